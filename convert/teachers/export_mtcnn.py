"""Export the MTCNN teacher nets to TFLite and ONNX with cards (the files committed under
edge/models/mtcnn-teacher), and check each file against the Keras net it came from."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.convert.export.onnx import export_onnx
from facegate.convert.export.tflite import export_tflite
from facegate.convert.keras_backend import KerasBackend
from facegate.convert.teachers.mtcnn import NET_INPUT, build_teacher
from facegate.edge.backends import load_backend
from facegate.edge.cards import InputSpec, ModelCard, write_card
from facegate.edge.downloads import MTCNN_WHEEL
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

OUTPUTS = {
    "pnet": [{"name": "box", "dim": 4}, {"name": "prob", "dim": 2}],
    "rnet": [{"name": "box", "dim": 4}, {"name": "prob", "dim": 2}],
    "onet": [{"name": "box", "dim": 4}, {"name": "landmarks", "dim": 10}, {"name": "prob", "dim": 2}],
}


def export_mtcnn_teacher(out_dir: str | Path, tolerance: float = 1e-4) -> list[Path]:
    """Write pnet/rnet/onet as .tflite and .onnx plus cards; fail if any output drifts from Keras."""
    out_dir = Path(out_dir)
    written = []
    rng = np.random.default_rng(0)
    for net, model in build_teacher().items():
        size = NET_INPUT[net]
        probe = rng.normal(size=(4, 37, 53, 3) if net == "pnet" else (4, size, size, 3)).astype(np.float32)
        reference = KerasBackend(model).run([probe])
        for fmt, exporter in (("tflite", export_tflite), ("onnx", export_onnx)):
            path = exporter(model, out_dir / f"{net}.{fmt}")
            got = load_backend(path).run([probe])
            err = max(float(np.abs(a - b).max()) for a, b in zip(got, reference))
            if err > tolerance:
                raise ModelError(f"{path.name} differs from the Keras {net} by {err:.2e} (> {tolerance})")
            card = ModelCard(
                name=f"mtcnn-teacher-{net}", task=f"mtcnn-{net}", file=path.name, sha256="",
                input=InputSpec(size=0 if net == "pnet" else size, normalisation="mean127.5_div128"),
                outputs=OUTPUTS[net], format=fmt, quantization="fp32",
                accuracy={"max_abs_diff_vs_keras": err},
                source=f"weights from the {MTCNN_WHEEL.requirement} wheel (MIT), sha256 {MTCNN_WHEEL.sha256}",
                notes="Run by facegate.edge.detect.MTCNN; outputs are matched by last dimension.")
            written += [path, write_card(card, path)]
            log.info("%s: max |diff| vs Keras %.2e", path.name, err)
    return written
