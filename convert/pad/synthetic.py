"""Synthetic presentation attacks made from live faces, for fine-tuning the liveness nets.

pad_dev has replay attacks from one source only (MSU), so a net fine-tuned without that source has never
seen a screen. Re-displaying a live crop the way a phone or tablet would, and re-capturing it the way a
door camera would, gives the nets screen-like attacks of every live person in the training data:

- replay: display tone (raised black level, boosted saturation and contrast, a colour cast), the
  display's sub-pixel grid at a random pitch and angle (the moire a camera sees when it resamples it),
  a specular glare, sometimes the screen's dark bezel along an edge, then camera blur and noise;
- print: ink on paper (less saturation, compressed dynamic range, a warm paper tint), a halftone dot
  screen, slight blur.

Everything works on the crop the net sees (uint8 RGB, any square size); the grid is drawn at 3x the
crop's resolution and area-resampled, which is where the moire comes from.
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("replay", "print")


def _grid(size: int, pitch: float, angle: float) -> np.ndarray:
    """An RGB sub-pixel stripe mask (size x size x 3, mean ~1) rotated by `angle` radians."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    which = np.minimum(np.floor(3 * ((u / pitch) % 1.0) + 1e-4), 2)              # R, G or B sub-pixel
    stripes = which[..., None] == np.arange(3, dtype=np.float32)
    rows = (((v / pitch) % 1.0) < 0.85)[..., None]                # the dark gap between pixel rows
    return (stripes * rows).astype(np.float32) * 3.0


def replay(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`crop` (uint8 RGB, square) as a camera would see it replayed on a phone or tablet screen."""
    size = crop.shape[0]
    x = crop.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1.05, 1.5)                               # vivid display colours
    x = np.clip((x - 128) * rng.uniform(1.0, 1.3) + 128, 0, 255)
    lift = rng.uniform(8, 35)                                                     # a lit panel's black level
    x = lift + x * (rng.uniform(0.85, 1.0) * 255 - lift) / 255
    x = x * np.array([rng.uniform(0.92, 1.02), 1.0, rng.uniform(1.0, 1.12)], np.float32)   # cool cast
    big = 3 * size
    x = cv2.resize(np.clip(x, 0, 255), (big, big), interpolation=cv2.INTER_NEAREST)
    amount = rng.uniform(0.05, 0.4)
    x = x * (1 - amount + amount * _grid(big, rng.uniform(2.2, 7.0), rng.uniform(0, np.pi)))
    if rng.random() < 0.6:                                                        # glare off the glass
        cy, cx = rng.uniform(0, big, 2)
        sy, sx = rng.uniform(0.1, 0.5, 2) * big
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
        x = x + rng.uniform(15, 70) * np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))[..., None]
    x = cv2.resize(np.clip(x, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.35:                                                       # the bezel in view
        side, width = int(rng.integers(4)), int(rng.uniform(0.04, 0.15) * size)
        dark = rng.uniform(0, 25)
        if side == 0:
            x[:width] = dark
        elif side == 1:
            x[-width:] = dark
        elif side == 2:
            x[:, :width] = dark
        else:
            x[:, -width:] = dark
    return _recapture(x, rng)


def printed(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`crop` (uint8 RGB, square) as a camera would see it printed on paper."""
    size = crop.shape[0]
    x = crop.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.4, 0.9)                                 # ink is less saturated
    low, high = rng.uniform(15, 50), rng.uniform(200, 240)
    x = low + x * (high - low) / 255.0                                            # paper's dynamic range
    x = x * np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.86, 0.97)], np.float32)   # warm paper
    big = 3 * size
    x = cv2.resize(x, (big, big), interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    pitch, angle = rng.uniform(2.0, 5.0), rng.uniform(0, np.pi / 2)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    dots = 0.5 + 0.25 * (np.cos(2 * np.pi * u / pitch) + np.cos(2 * np.pi * v / pitch))
    amount = rng.uniform(0.05, 0.25)
    x = x * (1 - amount + amount * 2 * dots[..., None])         # dots average 0.5
    x = cv2.resize(np.clip(x, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    return _recapture(x, rng)


def _recapture(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        x = cv2.GaussianBlur(x, (3, 3), rng.uniform(0.3, 1.0))
    x = x + rng.normal(0, rng.uniform(1, 4), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def synthetic_attack(crop: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] = KINDS) -> np.ndarray:
    """One synthetic attack of a random kind in `kinds` made from a live crop."""
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "replay":
        return replay(crop, rng)
    if kind == "print":
        return printed(crop, rng)
    raise ValueError(f"unknown synthetic attack {kind!r}; known: {', '.join(KINDS)}")
