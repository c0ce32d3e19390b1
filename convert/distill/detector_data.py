"""Training samples for the MTCNN students, labelled by the teacher nets (soft targets).

* P-Net learns on whole patches of pyramid-scaled photos: the teacher P-Net's dense output maps
  (face probability and box regression at every 12 px window, stride 2) are the targets, exactly
  as the cascade uses the net. Half of the patches are centred on ground-truth faces scaled to
  12-30 px, the rest are random, so positives are not drowned out.
* R-Net / O-Net learn on the candidates the *student* cascade produces up to their stage (cascade
  order: what R-Net sees on a board is what the student P-Net proposes), plus jittered
  ground-truth boxes so every face is represented; the teacher R-Net / O-Net score, regress and (for
  O-Net) place landmarks on the same crops.
* A share of the crops and patches (`camera_share`) is mirrored and degraded like a door camera
  (`camera_jitter`: exposure, gamma, grey/IR-like, blur, sensor noise) *before* the teacher labels
  them, so the targets stay exact ("consistent teaching"): the student sees more kinds of faces
  without learning the teacher's answer for a picture it was not shown.
Crops are kept as float16 on the normalised image scale the nets read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facegate.convert.distill.augment import exposure, grey_or_ir
from facegate.edge.backends import Backend
from facegate.edge.detect.boxes import crop_and_resize, pairwise_overlap, to_square
from facegate.edge.detect.mtcnn import MTCNN, NET_NORMALISATION, CascadeConfig, split_outputs
from facegate.edge.face.embed import normalise
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)

PNET_PATCH = 64


@dataclass
class TrainImage:
    path: Path
    boxes: np.ndarray      # (n, 4) x1 y1 x2 y2 ground truth (may be empty for unlabelled photos)


def normalised(image: np.ndarray) -> np.ndarray:
    return normalise(image, NET_NORMALISATION)


def wider_images(wider_root: Path, keep) -> list[TrainImage]:
    """WIDER photos (with ground truth) whose index passes `keep(index)` (train/held-out split)."""
    from facegate.convert.evaluate.wider import read_gt_txt
    gt = read_gt_txt(wider_root / "wider_face_val_bbx_gt.txt")
    out = []
    for i, (rel, xywh) in enumerate(sorted(gt.items())):
        path = wider_root / "images" / rel
        if keep(i) and path.exists():
            b = xywh.copy()
            b[:, 2:] += b[:, :2]
            out.append(TrainImage(path, b[(xywh[:, 2] >= 6) & (xywh[:, 3] >= 6)]))
    return out


def photo_images(paths: list[Path]) -> list[TrainImage]:
    """Portrait photos without ground truth (LFW / CelebA): the teacher's detections stand in."""
    return [TrainImage(p, np.zeros((0, 4))) for p in paths]


def camera_jitter(x: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Mirror and degrade a random `share` of normalised crops (n, h, w, 3) like a door camera.

    Works on the nets' scale ((pixel - 127.5) / 128), in place when `x` is float32 (P-Net patch
    sets run to gigabytes), and returns the array; the caller labels the result with the teacher.
    Mirroring is exact here (the teacher labels the mirrored crop), unlike a flip of stored
    targets, which would need landmark left/right swaps."""
    out = x if x.dtype == np.float32 else x.astype(np.float32)
    for i in np.flatnonzero(rng.random(len(out)) < share):
        img = out[i] * 128.0 + 127.5
        if rng.random() < 0.5:
            img = img[:, ::-1]
        if rng.random() < 0.8:
            img = exposure(img, rng)
        if rng.random() < 0.15:
            img = grey_or_ir(img, rng)
        if rng.random() < 0.2:                      # focus / motion blur, scaled to the crop
            sigma = rng.uniform(0.3, 1.0) * img.shape[0] / 48.0
            img = cv2.GaussianBlur(np.ascontiguousarray(img, np.float32), (0, 0), sigma)
        if rng.random() < 0.2:                      # sensor noise
            img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
        out[i] = (np.clip(img, 0, 255) - 127.5) / 128.0
    return out


def crop_views(x: np.ndarray, rng: np.random.Generator, max_shift: float = 0.12, max_scale: float = 0.12,
               max_rotate_deg: float = 12.0, camera_share: float = 0.5, low_res_share: float = 0.3) -> np.ndarray:
    """New views of normalised crops (n, s, s, 3) for online relabelling by the teacher: each one
    shifted, scaled and rotated a little (edges reflected), half of them mirrored, a `low_res_share`
    brought down to 25-80% of the crop size and back up (a small, far face: most WIDER faces are
    smaller than the crop the net reads, most training portraits larger), and a `camera_share`
    degraded like a door camera.

    R-Net and O-Net memorise a fixed crop set (O-Net reached a training loss 10x below its held-out
    loss); views the teacher labels on the fly give a fresh, exactly labelled set every epoch
    ("patient and consistent" distillation) and make mirroring exact for landmarks too."""
    n, size = len(x), x.shape[1]
    out = np.empty((n, size, size, 3), np.float32)
    centre = (size / 2.0, size / 2.0)
    for i in range(n):
        m = cv2.getRotationMatrix2D(centre, rng.uniform(-1, 1) * max_rotate_deg, 1.0 + rng.uniform(-1, 1) * max_scale)
        m[:, 2] += rng.uniform(-1, 1, size=2) * max_shift * size
        img = cv2.warpAffine(np.asarray(x[i], np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < low_res_share:
            small = max(8, int(round(size * rng.uniform(0.25, 0.8))))
            img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                             interpolation=cv2.INTER_LINEAR)
        out[i] = img[:, ::-1] if rng.random() < 0.5 else img
    return camera_jitter(out, rng, camera_share) if camera_share > 0 else out


def relabel(teacher_net: Backend, x: np.ndarray, keys: list[str], batch: int = 512) -> list[np.ndarray]:
    """The teacher net's targets for crops or patches `x` as the sample caches store them (prob: the
    face column only), in the order of `keys`."""
    outs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch):
        for k, v in split_outputs(teacher_net.run([x[start:start + batch]])).items():
            outs.setdefault(k, []).append(v)
    got = {k: np.concatenate(v).astype(np.float32) for k, v in outs.items()}
    got["prob"] = got["prob"][..., 1:2]
    return [got[k] for k in keys]


def _teacher_boxes(teacher: MTCNN, image: np.ndarray) -> np.ndarray:
    faces = teacher.detect(image)
    return np.array([f.box for f in faces], np.float64).reshape(-1, 4)


def pnet_samples(images: list[TrainImage], teacher_pnet: Backend, teacher: MTCNN, per_image: int = 24,
                 rng: np.random.Generator | None = None, progress: bool = True,
                 camera_share: float = 0.0) -> dict[str, np.ndarray]:
    """(patches, teacher face-probability maps, teacher box maps) for P-Net distillation."""
    rng = rng or np.random.default_rng(0)
    xs = []
    for item in tqdm(images, desc="P-Net samples", unit="img", disable=not progress):
        image = load_rgb(item.path)
        gt = item.boxes if len(item.boxes) else _teacher_boxes(teacher, image)
        norm = normalised(image)
        h, w = norm.shape[:2]
        for k in range(per_image):
            if len(gt) and k % 2 == 0:     # face-centred: scale so the face is 12-30 px
                b = gt[rng.integers(len(gt))]
                side = max(b[2] - b[0], b[3] - b[1], 1.0)
                scale = rng.uniform(12, 30) / side
                cx, cy = (b[0] + b[2]) / 2 * scale, (b[1] + b[3]) / 2 * scale
                cx += rng.uniform(-20, 20)
                cy += rng.uniform(-20, 20)
            else:                          # anywhere, at a pyramid scale for faces of 20-200 px
                scale = 12 / rng.uniform(20, 200)
                cx, cy = rng.uniform(0, w * scale), rng.uniform(0, h * scale)
            hs, ws = max(int(h * scale), 1), max(int(w * scale), 1)
            if min(hs, ws) < 12:
                continue
            x0 = int(np.clip(cx - PNET_PATCH / 2, 0, max(ws - PNET_PATCH, 0)))
            y0 = int(np.clip(cy - PNET_PATCH / 2, 0, max(hs - PNET_PATCH, 0)))
            # scale only the region we need (whole-image resizes of 1024 px photos are the slow part)
            inv = 1.0 / scale
            sx0, sy0 = int(x0 * inv), int(y0 * inv)
            sx1, sy1 = int(min(w, np.ceil((x0 + PNET_PATCH) * inv) + 1)), int(min(h, np.ceil((y0 + PNET_PATCH) * inv) + 1))
            region = cv2.resize(norm[sy0:sy1, sx0:sx1], (max(1, int((sx1 - sx0) * scale)), max(1, int((sy1 - sy0) * scale))),
                                interpolation=cv2.INTER_AREA)
            patch = np.zeros((PNET_PATCH, PNET_PATCH, 3), np.float32)
            ph, pw = min(PNET_PATCH, region.shape[0]), min(PNET_PATCH, region.shape[1])
            patch[:ph, :pw] = region[:ph, :pw]
            xs.append(patch)
    x = camera_jitter(np.stack(xs), rng, camera_share)
    prob, box = relabel(teacher_pnet, x, ["prob", "box"], batch=256)
    return {"x": x.astype(np.float16), "prob": prob, "box": box}


def _jitter(gt: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Ground-truth boxes squared and shifted/scaled a little (positives and part faces)."""
    if not len(gt):
        return np.zeros((0, 4))
    b = to_square(gt[rng.integers(len(gt), size=n)].astype(np.float64))
    side = (b[:, 2] - b[:, 0])[:, None]
    shift = rng.uniform(-0.25, 0.25, size=(n, 2)) * side
    grow = rng.uniform(0.8, 1.25, size=(n, 1)) * side
    c = (b[:, :2] + b[:, 2:]) / 2 + shift
    return np.concatenate([c - grow / 2, c + grow / 2], axis=1)


def stage_samples(net: str, images: list[TrainImage], student: MTCNN, teacher_net: Backend, teacher: MTCNN,
                  max_candidates: int = 200, jitter_per_face: int = 3, rng: np.random.Generator | None = None,
                  progress: bool = True, camera_share: float = 0.0) -> dict[str, np.ndarray]:
    """Crops for R-Net (24 px) or O-Net (48 px) from the student cascade's own candidates, with the
    teacher net's outputs on them. Candidates overlapping a face (IoU > 0.3) are all kept; the
    rest (background, the hard negatives) are sampled down to `max_candidates` per image."""
    rng = rng or np.random.default_rng(1)
    size = 24 if net == "rnet" else 48
    crops: list[np.ndarray] = []
    for item in tqdm(images, desc=f"{net} samples", unit="img", disable=not progress):
        image = load_rgb(item.path)
        gt = item.boxes if len(item.boxes) else _teacher_boxes(teacher, image)
        norm = normalised(image)
        cand = student._stage_pnet(norm)
        if net == "onet":
            cand = student._stage_rnet(norm, cand)
        boxes = cand[:, :4] if len(cand) else np.zeros((0, 4))
        if len(boxes) and len(gt):
            near = pairwise_overlap(boxes, gt).max(axis=1) > 0.3
        else:
            near = np.zeros(len(boxes), bool)
        far = np.flatnonzero(~near)
        if len(far) > max_candidates:
            far = rng.choice(far, size=max_candidates, replace=False)
        chosen = np.concatenate([boxes[near], boxes[far], _jitter(gt, rng, jitter_per_face * len(gt))])
        if len(chosen):
            crops.append(crop_and_resize(norm, chosen, size))
    x = camera_jitter(np.concatenate(crops), rng, camera_share)
    keys = ["prob", "box", "landmarks"] if net == "onet" else ["prob", "box"]
    return {"x": x.astype(np.float16), **dict(zip(keys, relabel(teacher_net, x, keys)))}


def default_config() -> CascadeConfig:
    return CascadeConfig(min_face_size=20.0)
