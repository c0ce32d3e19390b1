"""Issue 5: how fast would the student be without PReLU? (speed only — the weights are not retrained)

    python benchmarks/embedder_relu_speed.py [--data runs/distill/heldout-celeba] [--widths 0.75 0.5]

The 20x target needs every op int8 on XNNPACK, which has no int8 PReLU. This swaps each of the student's
33 PReLUs for a ReLU (fused into the convolution before it by the converter), calibrates and converts
full-integer like `facegate export`, and times it with the shipped mixed file (PReLU float) and the
teacher fp32 TFLite in one run. The swapped network is NOT accurate (its embeddings are meaningless
until a ReLU student is distilled): the number says whether distilling one is worth a GPU session.
`--widths` adds the MobileFaceNet-style scratch student (`--student scratch`, ReLU) at those channel
multipliers, equally untrained: how small a ReLU student has to be for 20x.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from facegate.calibration.representative import representative_dataset
from facegate.convert.export.tflite import export_tflite
from facegate.convert.registry import resolve_embedder
from facegate.convert.students.mobilefacenet import StudentConfig
from facegate.edge.backends import load_backend
from facegate.edge.downloads import cache_dir
from facegate.edge.timing import median_ms

L = keras.layers
SHIPPED_MIXED = Path("edge/models/facenet-student/facenet-student_int8_float-prelu.tflite")


def relu_copy(model: keras.Model) -> keras.Model:
    return keras.models.clone_model(model, clone_function=lambda layer: L.ReLU(name=f"{layer.name}_relu")
                                    if isinstance(layer, L.PReLU) else layer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="calibration faces")
    ap.add_argument("--teacher", type=Path, default=cache_dir() / "exports" / "facenet-teacher" / "facenet-teacher_fp32.tflite")
    ap.add_argument("--out", type=Path, default=Path("runs/students/relu-speed"))
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--widths", type=float, nargs="*", default=[], help="scratch ReLU students to time too")
    args = ap.parse_args()
    source = resolve_embedder(args.model)
    representative = representative_dataset(source.spec, args.data, limit=300, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    path = export_tflite(relu_copy(source.backend.model), args.out / "facenet-student-relu_int8.tflite", quant="int8",
                         representative=representative)
    files = [("ReLU copy, full int8 (untrained)", path)]
    for width in args.widths:
        scratch = StudentConfig(width=width, activation="relu").build()
        files.append((f"scratch ReLU student, width {width:g}, full int8 (untrained)", export_tflite(
            scratch, args.out / f"scratch-relu-w{width:g}_int8.tflite", quant="int8", representative=representative)))
    x = np.zeros((1, source.spec.size, source.spec.size, 3), np.float32)
    teacher_x = np.zeros((1, 160, 160, 3), np.float32)
    result = {}
    for name, file, inp in (("teacher fp32", args.teacher, teacher_x), ("shipped mixed (PReLU float)", SHIPPED_MIXED, x),
                            *((n, f, x) for n, f in files)):
        row = {"file": str(file), "size_mb": round(Path(file).stat().st_size / 1e6, 2)}
        for threads in (1, 2):
            backend = load_backend(file, threads=threads)
            row[f"ms_{threads}_thread"] = median_ms(lambda: backend.run([inp]), args.repeats)
        result[name] = row
    base = result["teacher fp32"]
    for name, row in result.items():
        print(f"{name}: {row['ms_1_thread']} / {row['ms_2_thread']} ms (1 / 2 threads) = "
              f"{base['ms_1_thread'] / row['ms_1_thread']:.1f}x / {base['ms_2_thread'] / row['ms_2_thread']:.1f}x")
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
