"""The detection result shared by the detector, aligner, quality gates and evaluators."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: landmark order used everywhere in facegate (image-left eye first, as MTCNN emits them)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face: box [x1, y1, x2, y2] in pixels, score in [0, 1], 5x2 landmarks (x, y)."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    @property
    def inter_ocular(self) -> float:
        """Distance between the eyes in pixels: the size measure quality gates use."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 5),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]}


def pick_face(faces: list[Face], image_shape: tuple[int, ...], policy: str = "central") -> Face | None:
    """Choose the subject among several faces.

    'largest' takes the biggest box; 'central' favours size but penalises distance from the
    image centre (what a door camera or a passport-style photo means by "the" face).
    """
    if not faces:
        return None
    if policy == "largest":
        return max(faces, key=lambda f: f.area)
    if policy != "central":
        raise ValueError(f"face policy must be 'largest' or 'central', not {policy!r}")
    h, w = image_shape[:2]
    cx, cy = w / 2, h / 2

    def merit(f: Face) -> float:
        fx, fy = f.center
        offset = ((fx - cx) ** 2 + (fy - cy) ** 2) ** 0.5
        return f.area - 2.0 * offset ** 2

    return max(faces, key=merit)
