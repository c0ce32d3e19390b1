"""Augmentations that look like door cameras, applied to the student's 144x144 canvas.

The teacher target stays the clean, flip-averaged embedding: the student learns to give the
teacher's answer for the *clean* face from a degraded view of it, which is what a kiosk needs
(backlight, motion blur, cheap sensors, IR illumination at night, a hand or mask in the way).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facegate.convert.distill.targets import CANVAS, PAD, STUDENT_SIZE


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; `strength` 0 turns everything off (validation)."""

    strength: float = 1.0
    flip: float = 0.5
    max_rotate_deg: float = 10.0
    max_scale: float = 0.08
    max_shift_px: float = 5.0
    photometric: float = 0.8      # brightness / contrast / gamma
    blur: float = 0.2
    noise: float = 0.2
    jpeg: float = 0.25
    occlusion: float = 0.15
    grey: float = 0.15            # greyscale or IR-like


def exposure(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness and gamma of a float HxWx3 image on the 0-255 scale (backlight,
    auto-exposure); shared by the embedder's augmentation and the detector's camera views."""
    contrast = rng.uniform(0.6, 1.4)
    brightness = rng.uniform(-40, 40)
    x = np.clip((x - x.mean()) * contrast + x.mean() + brightness, 0, 255)
    return 255.0 * (x / 255.0) ** np.exp(rng.uniform(-0.4, 0.4))


def grey_or_ir(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greyscale, or half the time IR-like (flat, bright skin, little colour, some glow), as 3 channels."""
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    if rng.random() < 0.5:
        grey = np.clip(grey * rng.uniform(1.0, 1.4) + rng.uniform(0, 30), 0, 255)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _geometry(canvas: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    angle = rng.uniform(-1, 1) * cfg.max_rotate_deg * cfg.strength
    scale = 1.0 + rng.uniform(-1, 1) * cfg.max_scale * cfg.strength
    shift = rng.uniform(-1, 1, size=2) * cfg.max_shift_px * cfg.strength
    centre = (CANVAS / 2.0, CANVAS / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle, scale)
    m[:, 2] += shift - PAD          # then take the centre 112x112
    return cv2.warpAffine(canvas, m, (STUDENT_SIZE, STUDENT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def augment(canvas: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One augmented 112x112 uint8 RGB student input from a 144x144 canvas."""
    if cfg.strength <= 0:
        return canvas[PAD:PAD + STUDENT_SIZE, PAD:PAD + STUDENT_SIZE].copy()
    img = _geometry(canvas, rng, cfg)
    if rng.random() < cfg.flip:
        img = img[:, ::-1]
    x = img.astype(np.float32)
    if rng.random() < cfg.photometric:
        x = exposure(x, rng)
    if rng.random() < cfg.grey:
        x = grey_or_ir(x, rng)
    if rng.random() < cfg.blur:
        if rng.random() < 0.5:
            k = int(rng.choice([3, 5]))
            x = cv2.GaussianBlur(x, (k, k), 0)
        else:   # motion blur along a random direction
            k = int(rng.choice([3, 5, 7]))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2] = 1.0 / k
            rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (k, k))
            x = cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < cfg.noise:
        x = x + rng.normal(0, rng.uniform(2, 10), x.shape).astype(np.float32)
    img = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 70))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if rng.random() < cfg.occlusion:
        h = int(rng.integers(15, 45))
        w = int(rng.integers(15, 60))
        y0 = int(rng.integers(0, STUDENT_SIZE - h))
        x0 = int(rng.integers(0, STUDENT_SIZE - w))
        img = img.copy()
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 255, size=3, dtype=np.uint8)
    return np.ascontiguousarray(img)


def augment_batch(canvases: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    return np.stack([augment(c, rng, cfg) for c in canvases])
