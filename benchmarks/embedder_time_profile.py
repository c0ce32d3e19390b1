"""Where one face's time goes inside an embedder student, block by block (issue 5: what to prune).

    python benchmarks/embedder_time_profile.py [--model KERAS] [--out runs/students/time-profile]

LiteRT's Python API has no per-operator profiler, so this exports prefixes of the network — from the
input to each block's output, with a global average pool so the output stays small — as int8 TFLite
files with PReLU float (folded and equalised like `facegate export --quant int8 --float-ops PRELU`),
times each at 1 and 2 threads in a fresh process, and reports the difference between consecutive
prefixes: the cost of each block as the board runs it. Differences of a few hundredths of a ms are
within the timing noise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def block_ends(model) -> list[str]:
    """The stem's last activation, every bottleneck's output (its residual sum, or its projection when
    it has none), the last 512-channel conv's activation and the embedding."""
    names = [layer.name for layer in model.layers]
    ends = ["peer_separableconv2d_prelu"]
    for name in names:
        if name.endswith("_add") or (name.endswith("_conv_1") and name.replace("_conv_1", "_add") not in names):
            ends.append(name)
    return ends + ["peer_conv2d_7_prelu", "embedding"]


def export_prefixes(model_path: str, data: Path, out: Path) -> list[str]:
    import keras

    from facegate.calibration.representative import representative_dataset
    from facegate.convert.export.model import prepared_for_export
    from facegate.convert.export.tflite import export_tflite
    from facegate.convert.registry import resolve_embedder

    source = resolve_embedder(model_path)
    representative = representative_dataset(source.spec, data, limit=60, progress=False)
    model, _, _ = prepared_for_export(source.backend.model, representative)
    ends = [e for e in block_ends(model) if e in {layer.name for layer in model.layers}]
    for i, end in enumerate(ends):
        tensor = model.get_layer(end).output
        if len(tensor.shape) == 4:
            tensor = keras.layers.GlobalAveragePooling2D()(tensor)
        export_tflite(keras.Model(model.input, tensor), out / f"{i:02d}_{end}.tflite", quant="int8",
                      representative=representative, float_ops=("PRELU",))
    return ends


def time_prefixes(out: Path, repeats: int) -> list[dict]:
    from facegate.edge.backends import load_backend
    from facegate.edge.timing import median_ms

    x = np.zeros((1, 112, 112, 3), np.float32)
    rows, previous = [], {1: 0.0, 2: 0.0}
    for path in sorted(out.glob("*.tflite")):
        row = {"up_to": path.stem.split("_", 1)[1]}
        for threads in (1, 2):
            backend = load_backend(path, threads=threads)
            total = median_ms(lambda: backend.run([x]), repeats)
            row[f"ms_{threads}_thread"] = total
            row[f"block_ms_{threads}_thread"] = round(total - previous[threads], 3)
            previous[threads] = total
        rows.append(row)
        print(f"{row['up_to']:45s} total {row['ms_1_thread']:.2f} / {row['ms_2_thread']:.2f} ms, this block "
              f"{row['block_ms_1_thread']:+.2f} / {row['block_ms_2_thread']:+.2f} ms (1 / 2 threads)")
    (out / "result.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="calibration faces")
    ap.add_argument("--out", type=Path, default=Path("runs/students/time-profile"))
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--time-only", action="store_true", help=argparse.SUPPRESS)   # the fresh-process half
    args = ap.parse_args()
    if not args.time_only:
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.tflite"):
            old.unlink()
        export_prefixes(args.model, args.data, args.out)
        # time without TensorFlow's conversion threads in the process (benchmarks/speed_vs_teacher.py)
        subprocess.run([sys.executable, __file__, "--out", str(args.out), "--repeats", str(args.repeats),
                        "--time-only"], check=True)
        return
    time_prefixes(args.out, args.repeats)


if __name__ == "__main__":
    main()
