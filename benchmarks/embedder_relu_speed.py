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
from pathlib import Path

import keras
from speed_vs_teacher import TEACHER, time_folder_in_fresh_process  # benchmarks/ is on sys.path when run

from facegate.calibration.representative import representative_dataset
from facegate.convert.export.tflite import export_tflite
from facegate.convert.registry import resolve_embedder
from facegate.convert.students.mobilefacenet import StudentConfig

L = keras.layers


def relu_copy(model: keras.Model) -> keras.Model:
    return keras.models.clone_model(model, clone_function=lambda layer: L.ReLU(name=f"{layer.name}_relu")
                                    if isinstance(layer, L.PReLU) else layer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="calibration faces")
    ap.add_argument("--teacher", type=Path, default=TEACHER)
    ap.add_argument("--out", type=Path, default=Path("runs/students/relu-speed"))
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--widths", type=float, nargs="*", default=[], help="scratch ReLU students to time too")
    args = ap.parse_args()
    source = resolve_embedder(args.model)
    representative = representative_dataset(source.spec, args.data, limit=300, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    path = export_tflite(relu_copy(source.backend.model), args.out / "facenet-student-relu_int8.tflite", quant="int8",
                         representative=representative)
    print(f"{path.name}: ReLU copy, full int8 (untrained)")
    for width in args.widths:
        scratch = StudentConfig(width=width, activation="relu").build()
        export_tflite(scratch, args.out / f"scratch-relu-w{width:g}_int8.tflite", quant="int8",
                      representative=representative)
        print(f"scratch-relu-w{width:g}_int8.tflite: scratch ReLU student, width {width:g}, full int8 (untrained)")
    time_folder_in_fresh_process(args.out, args.repeats, args.teacher)

if __name__ == "__main__":
    main()
