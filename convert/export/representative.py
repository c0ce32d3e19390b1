"""Representative datasets for full-integer (int8) quantisation, and the aligned face crops they (and
the export's parity check) are made of.

The converter needs inputs that look like what the model will see on a board: aligned faces,
normalised exactly as the card says. Default source: the 5-celebrity train photos from the
teacher's sdist. The aligned crops are cached (per folder, size, alignment and sample size).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.edge.cards import InputSpec
from facegate.edge.detect.face import pick_face
from facegate.edge.downloads import cache_dir, celebrity5_dir
from facegate.edge.errors import DatasetError
from facegate.edge.face.align import align_face
from facegate.edge.face.embed import normalise
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


def representative_crops(spec: InputSpec, folder: Path | None = None, limit: int = 200,
                         progress: bool = True) -> np.ndarray:
    folder = Path(folder) if folder else celebrity5_dir() / "train"
    tag = hashlib.sha1(f"{folder.resolve()}|{spec.size}|{spec.alignment}|{limit}".encode()).hexdigest()[:12]
    cache = cache_dir() / "calibration" / f"representative-{tag}.npy"
    if cache.exists():
        return np.load(cache)
    crops, _ = aligned_crops(sample_images(folder, limit), spec.size, spec.alignment, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, crops)
    return crops


def representative_dataset(spec: InputSpec, folder: Path | None = None, limit: int = 200,
                           fraction: float = 1.0, progress: bool = True) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A TFLite `representative_dataset` callable over `fraction` of the cached crops."""
    crops = representative_crops(spec, folder, limit, progress)
    n = max(1, int(round(len(crops) * fraction)))
    data = normalise(crops[:n], spec.normalisation)

    def gen() -> Iterator[list[np.ndarray]]:
        for x in data:
            yield [x[None].astype(np.float32)]
    return gen
