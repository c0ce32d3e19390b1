"""Where the default model files live and how to open them.

Small models are committed under `edge/models/<name>/` (package data) with their cards, so a fresh
install runs without downloading anything. `facegate teachers export-mtcnn` regenerates the teacher
detector files.
"""
from __future__ import annotations

from pathlib import Path

from facegate.edge.backends import load_backend
from facegate.edge.cards import load_card
from facegate.edge.detect.mtcnn import MTCNN, CascadeConfig
from facegate.edge.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_DETECTOR = "mtcnn-teacher"
DETECTORS = ("mtcnn-teacher",)


def detector_dir(name: str = DEFAULT_DETECTOR) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    path = MODELS_DIR / name
    if not path.is_dir():
        raise ModelError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)} or a folder with "
                         "pnet/rnet/onet model files")
    return path


def _preferred_suffix(folder: Path) -> str:
    try:
        import ai_edge_litert  # noqa: F401
        if (folder / "pnet.tflite").exists():
            return ".tflite"
    except ImportError:
        pass
    if (folder / "pnet.onnx").exists():
        return ".onnx"
    return ".tflite"


def load_detector(name: str = DEFAULT_DETECTOR, fmt: str | None = None, threads: int | None = None,
                  config: CascadeConfig | None = None) -> MTCNN:
    """An MTCNN cascade from a named (committed) model set or a folder, cards verified."""
    folder = detector_dir(name)
    suffix = f".{fmt.lstrip('.')}" if fmt else _preferred_suffix(folder)
    nets = []
    for net in ("pnet", "rnet", "onet"):
        path = folder / f"{net}{suffix}"
        load_card(path)  # refuses a file whose checksum does not match its card
        nets.append(load_backend(path, threads=threads))
    return MTCNN(*nets, config=config, name=f"{folder.name}{suffix}")
