"""Face alignment: a 5-point similarity transform to a canonical template, or a plain margin crop.

* `similarity112` / `similarity160`: least-squares similarity (Umeyama, no reflection) from the
  five MTCNN landmarks to the standard 112x112 ArcFace template (scaled for 160x160). What mobile
  embedders (MobileFaceNet, our students) are trained on.
* `margin32`: the detection box grown by 32 px (16 per side, in original-image pixels), clipped to
  the image and resized: how FaceNet's authors prepared LFW for the teacher.
"""
from __future__ import annotations

import cv2
import numpy as np

from facegate.edge.detect.face import Face

#: ArcFace / InsightFace 5-point template for a 112x112 crop (left eye, right eye, nose, mouth corners)
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

ALIGNMENTS = ("similarity112", "similarity160", "margin32", "none")


def template(size: int) -> np.ndarray:
    """The 5-point template scaled to a size x size crop."""
    return TEMPLATE_112 * (size / 112.0)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity matrix (rotation, uniform scale, translation) that maps src onto dst in the
    least-squares sense (Umeyama 1991), never a reflection."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching Nx2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = float((sig * np.diag(sign)).sum() / var_s) if var_s > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def align_similarity(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face so its landmarks land on the template of a size x size crop."""
    matrix = umeyama(landmarks, template(size))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def margin_crop(image: np.ndarray, box: np.ndarray, size: int = 160, margin: float = 32) -> np.ndarray:
    """Crop the box grown by `margin` pixels in total per axis (clipped to the image), resized."""
    h, w = image.shape[:2]
    x1 = int(max(np.floor(box[0] - margin / 2), 0))
    y1 = int(max(np.floor(box[1] - margin / 2), 0))
    x2 = int(min(np.ceil(box[2] + margin / 2), w))
    y2 = int(min(np.ceil(box[3] + margin / 2), h))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"face box {box} is empty inside a {w}x{h} image")
    crop = image[y1:y2, x1:x2]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)


def align_face(image: np.ndarray, face: Face, size: int, method: str) -> np.ndarray:
    """Prepare one face crop of size x size the way the embedder's card asks."""
    if method.startswith("similarity"):
        return align_similarity(image, face.landmarks, size)
    if method == "margin32":
        return margin_crop(image, face.box, size, margin=32)
    if method == "none":
        return margin_crop(image, face.box, size, margin=0)
    raise ValueError(f"unknown alignment {method!r}; known: {ALIGNMENTS}")


def fallback_face(image_shape: tuple[int, ...], fraction: float = 0.45) -> Face:
    """A face assumed at the image centre, for photos pre-cropped around a face (LFW, CelebA
    crops) where the detector finds nothing: a central square with template landmarks."""
    h, w = image_shape[:2]
    side = fraction * min(h, w)
    x1, y1 = (w - side) / 2, (h - side) / 2
    box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
    # template landmarks of a 112 crop mapped into the box (face fills the crop like a detection)
    lms = (TEMPLATE_112 / 112.0 * side + [x1, y1]).astype(np.float32)
    return Face(box=box, score=0.0, landmarks=lms)
