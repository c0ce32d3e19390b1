"""Aligned face crops from a folder of photos: the raw material of calibration sets."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.edge.align import align_face
from facegate.edge.detect.face import pick_face
from facegate.edge.errors import DatasetError
from facegate.edge.images import list_images, load_rgb
from facegate.edge.registry import load_detector

log = logging.getLogger(__name__)


def aligned_crops(paths: list[Path], size: int, alignment: str, progress: bool = True) -> tuple[np.ndarray, list[Path]]:
    """Detect the subject face of each photo and align it; photos without a face are skipped."""
    detector = load_detector()
    crops, used = [], []
    for p in tqdm(paths, desc="align faces", unit="img", disable=not progress):
        img = load_rgb(p)
        face = pick_face(detector.detect(img), img.shape, "largest")
        if face is None:
            log.debug("no face in %s: skipped", p)
            continue
        crops.append(align_face(img, face, size, alignment))
        used.append(p)
    if not crops:
        raise DatasetError("no faces found in the calibration photos")
    return np.stack(crops), used


def sample_images(folder: Path, limit: int | None, seed: int = 0) -> list[Path]:
    """A reproducible sample of the photos under a folder."""
    paths = list_images(folder)
    if not paths:
        raise DatasetError(f"no images under {folder}")
    if limit and limit < len(paths):
        idx = np.random.default_rng(seed).choice(len(paths), size=limit, replace=False)
        paths = [paths[i] for i in sorted(idx)]
    return paths
