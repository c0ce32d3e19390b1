"""Box geometry for the MTCNN cascade, in numpy.

Boxes are float arrays [x1, y1, x2, y2]. The functions reproduce the reference `mtcnn` 1.0.0
package's conventions (its NMS rule, its +1 in box widths, TensorFlow's crop_and_resize sampling)
so that the cascade gives the teacher's detections on any backend.
"""
from __future__ import annotations

import numpy as np


def pairwise_overlap(a: np.ndarray, b: np.ndarray, method: str = "union") -> np.ndarray:
    """IoU (method='union') or intersection over the smaller area (method='min'), shape (len(a), len(b))."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.maximum(0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    ih = np.maximum(0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = iw * ih
    if method == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    elif method == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        raise ValueError(f"overlap method must be 'union' or 'min', not {method!r}")
    # degenerate (zero-area) pairs overlap 0, not NaN
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


NMS_MODES = ("reference", "greedy")


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union",
        presorted: bool = False, mode: str = "reference", chunk: int = 1024) -> np.ndarray:
    """Indices of the boxes to keep, best score first.

    mode='reference' is the `mtcnn` package's rule: after sorting by score, a box survives only if
    *no* box before it (kept or not) overlaps it by more than `threshold`; computed in row chunks
    so thousands of P-Net proposals need no NxN matrix at once. mode='greedy' is classic NMS: only
    kept boxes suppress, which keeps more faces in crowds.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if mode not in NMS_MODES:
        raise ValueError(f"NMS mode must be one of {NMS_MODES}, not {mode!r}")
    if n == 1:  # common on a door frame's small pyramid levels: nothing to suppress
        return np.zeros(1, dtype=np.int64)
    order = np.arange(n) if presorted else np.argsort(-scores, kind="stable")
    b = boxes[order]
    if mode == "greedy":
        alive = np.ones(n, dtype=bool)
        kept = []
        for i in range(n):
            if not alive[i]:
                continue
            kept.append(i)
            rest = np.nonzero(alive[i + 1:])[0] + i + 1
            if len(rest):
                alive[rest[pairwise_overlap(b[i:i + 1], b[rest], method)[0] > threshold]] = False
        return order[np.array(kept, dtype=np.int64)]
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        ov = pairwise_overlap(b[:stop], b[start:stop], method)  # rows: candidates i, cols: j
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        keep[start:stop] = ~np.any((ov > threshold) & earlier, axis=0)
    return order[keep]


def to_square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = the longer side)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def apply_regression(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift box corners by offsets given in units of the box size (width/height counted +1)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops of `image` (HxWxC float32) inside `boxes`, each resized to size x size.

    Same sampling as tf.image.crop_and_resize with boxes normalised by the image size: corner
    samples sit on the box corners, and samples falling outside the image are 0 (which, on the
    normalised image, is mid-grey). The four neighbours are gathered with `take` on the flattened
    image and blended in place: R-Net's crops were a tenth of a door frame's time with plain fancy
    indexing.
    """
    h, w = image.shape[:2]
    channels = image.shape[2]
    n = len(boxes)
    if n == 0:
        return np.zeros((0, size, size, channels), np.float32)
    t = np.arange(size, dtype=np.float64) / (size - 1)
    y1n, x1n = boxes[:, 1] / h, boxes[:, 0] / w
    y2n, x2n = boxes[:, 3] / h, boxes[:, 2] / w
    ys = (y1n[:, None] + t[None, :] * (y2n - y1n)[:, None]) * (h - 1)  # (n, size)
    xs = (x1n[:, None] + t[None, :] * (x2n - x1n)[:, None]) * (w - 1)
    valid = (((ys >= 0) & (ys <= h - 1))[:, :, None] & ((xs >= 0) & (xs <= w - 1))[:, None, :])
    y_floor, x_floor = np.floor(ys), np.floor(xs)
    row0 = (np.clip(y_floor, 0, h - 1).astype(np.intp) * w)[:, :, None]
    row1 = (np.clip(np.ceil(ys), 0, h - 1).astype(np.intp) * w)[:, :, None]
    col0 = np.clip(x_floor, 0, w - 1).astype(np.intp)[:, None, :]
    col1 = np.clip(np.ceil(xs), 0, w - 1).astype(np.intp)[:, None, :]
    fy = (ys - y_floor).astype(np.float32)[:, :, None, None]
    fx = (xs - x_floor).astype(np.float32)[:, None, :, None]
    flat = np.ascontiguousarray(image, dtype=np.float32).reshape(h * w, channels)
    top_l = flat.take(row0 + col0, axis=0)
    top = flat.take(row0 + col1, axis=0)
    top -= top_l
    top *= fx
    top += top_l                      # top_l + (top_r - top_l) * fx
    out = flat.take(row1 + col0, axis=0)
    bot = flat.take(row1 + col1, axis=0)
    bot -= out
    bot *= fx
    bot += out                        # bot_l + (bot_r - bot_l) * fx
    bot -= top
    bot *= fy
    bot += top                        # top + (bot - top) * fy
    if not valid.all():
        bot[~valid] = 0.0
    return bot


def clip_to_image(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clamp box corners into the image (last valid pixel index)."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height - 1)
    return out
