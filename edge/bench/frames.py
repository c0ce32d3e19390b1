"""Synthetic door frames: what the benchmarks time, built the same way on every machine."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facegate.edge.images import load_rgb


def door_frame(photo: Path, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A 640x480 frame with one face: the photo scaled to 60% of the frame height on a grey wall."""
    img = load_rgb(photo)
    w, h = size
    scale = 0.6 * h / img.shape[0]
    small = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 128, np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return frame
