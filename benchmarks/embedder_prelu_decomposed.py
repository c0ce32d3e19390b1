"""Issue 5, tried in session 16: can the student's PReLUs run int8 on XNNPACK written as ops it has?

    python benchmarks/embedder_prelu_decomposed.py [--data runs/distill/heldout-celeba] [--out DIR]

XNNPACK has no int8 PReLU, so the shipped fast file keeps the 33 PReLUs float (a quantize / float
PReLU / dequantize island each). Here every PReLU becomes a*x + (1-a)*relu(x): two per-channel
scalings (1x1 depthwise convs) and an add, with relu(x) as an identity 1x1 depthwise conv with a
fused ReLU — int8 RELU on its own is not delegated either (a conv -> RELU -> conv test model ran 6x
slower than conv -> conv). The rewritten student is equalised and calibrated like `facegate export`
does, converted full-integer, and timed with the shipped mixed file in one run (LiteRT, 1 and 2
threads), with its mean cosine to the float student on the 5-celebrity validation faces.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from facegate.calibration.faces import aligned_crops, sample_images
from facegate.calibration.representative import representative_dataset
from facegate.convert.export.model import equalized_copy
from facegate.convert.export.tflite import export_tflite
from facegate.convert.registry import resolve_embedder
from facegate.edge.backends import load_backend
from facegate.edge.downloads import celebrity5_dir
from facegate.edge.embed import Embedder
from facegate.edge.timing import median_ms

L = keras.layers
SHIPPED_MIXED = Path("edge/models/facenet-student/facenet-student_int8_float-prelu.tflite")


class DecomposedPReLU(L.Layer):
    """PReLU as a*x + (1-a)*relu(x) with only depthwise convs and an add (all int8 on XNNPACK)."""

    def __init__(self, alpha: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = np.asarray(alpha, np.float32).reshape(-1)
        self.scale_x = L.DepthwiseConv2D(1, use_bias=False)
        self.relu = L.DepthwiseConv2D(1, use_bias=False, activation="relu")
        self.scale_relu = L.DepthwiseConv2D(1, use_bias=False)

    def build(self, shape) -> None:
        channels = shape[-1]
        alpha = np.broadcast_to(self.alpha, (channels,)).reshape(1, 1, channels, 1)
        for layer, weights in ((self.scale_x, alpha), (self.relu, np.ones_like(alpha)), (self.scale_relu, 1 - alpha)):
            layer.build(shape)
            layer.set_weights([weights.astype(np.float32)])

    def call(self, x):
        return ops.add(self.scale_x(x), self.scale_relu(self.relu(x)))


def decompose_prelu(model: keras.Model) -> keras.Model:
    return keras.models.clone_model(model, clone_function=lambda layer: DecomposedPReLU(
        layer.get_weights()[0], name=f"{layer.name}_decomposed") if isinstance(layer, L.PReLU) else layer)


def op_counts(path: Path) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter
    return dict(collections.Counter(d["op_name"] for d in Interpreter(model_path=str(path))._get_ops_details()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="calibration faces")
    ap.add_argument("--out", type=Path, default=Path("runs/students/prelu-decomposed"))
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    source = resolve_embedder(args.model)
    spec = source.spec
    representative = representative_dataset(spec, args.data, limit=300, progress=False)
    equalised, _ = equalized_copy(source.backend.model, representative)
    decomposed = decompose_prelu(equalised)
    args.out.mkdir(parents=True, exist_ok=True)
    path = export_tflite(decomposed, args.out / "facenet-student_int8_prelu-decomposed.tflite", quant="int8",
                         representative=representative)
    crops, _ = aligned_crops(sample_images(celebrity5_dir() / "val", 64), spec.size, spec.alignment, progress=False)
    reference = source.embed(crops)
    result = {}
    for name, file in (("shipped mixed (PReLU float)", SHIPPED_MIXED), ("full int8, PReLU decomposed", path)):
        embedded = Embedder(load_backend(file), spec, file.name, identity=file.name).embed(crops)
        row = {"file": str(file), "size_mb": round(file.stat().st_size / 1e6, 2), "ops": op_counts(file),
               "cosine_to_float_student": round(float(np.mean(np.sum(reference * embedded, axis=1))), 4)}
        for threads in (1, 2):
            backend = load_backend(file, threads=threads)
            x = np.zeros((1, spec.size, spec.size, 3), np.float32)
            row[f"ms_{threads}_thread"] = median_ms(lambda: backend.run([x]), args.repeats)
        result[name] = row
        print(f"{name}: {row['size_mb']} MB, {row['ms_1_thread']} / {row['ms_2_thread']} ms (1 / 2 threads), "
              f"cosine to the float student {row['cosine_to_float_student']}")
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
