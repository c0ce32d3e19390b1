"""Reading images from disk into RGB uint8 arrays, with errors a person can act on."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.errors import ImageError


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 RGB uint8 array.

    OpenCV returns None for anything it cannot decode; we turn that into an ImageError naming the
    file, and tell an empty or missing file apart from a corrupt one.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file but got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty (0 bytes): {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"not a readable image (corrupt or unsupported format): {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: HxWx3 uint8 (greyscale is expanded to 3 channels)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[0] < 12 or image.shape[1] < 12:
        raise ImageError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]} px")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """All image files below a folder, sorted, so runs are reproducible. Linked sub-folders are
    followed (a folder of links to identity folders is how held-out sets are made)."""
    found = []
    for root, _, files in os.walk(Path(folder), followlinks=True):
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in found if p.is_file())
