"""Quality gates: is this face good enough to enrol or to decide on? Every rejection says why.

Measures come from the 5 landmarks (size, pose) and from the aligned crop (sharpness, exposure),
so they are cheap enough to run on every frame of a door camera.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from facegate.edge.config import within
from facegate.edge.detect.face import Face


@dataclass(frozen=True)
class QualityConfig:
    """Limits; the defaults suit a door camera at 640x480 with people at 0.5–1.5 m."""

    min_inter_ocular: float = within(18.0, 0, 2000)   # pixels between the eyes in the camera frame
    min_sharpness: float = within(40.0, 0, 1e6)      # variance of the Laplacian of the 112x112 grey crop
    max_yaw: float = within(0.35, 0, 10)            # |nose offset from the eye midline| / inter-ocular distance
    max_roll_deg: float = within(25.0, 0, 180)       # eye line angle
    pitch_range: tuple[float, float] = (0.25, 0.80)  # nose height between eye line (0) and mouth line (1)
    brightness_range: tuple[float, float] = (40.0, 220.0)  # mean grey level of the crop
    max_clipped: float = within(0.25, 0, 1)        # fraction of crop pixels at 0-5 or 250-255
    min_score: float = within(0.90, 0, 1)          # detector confidence


@dataclass
class QualityReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def pose_from_landmarks(face: Face) -> dict[str, float]:
    """Roll (degrees), yaw and pitch proxies from the 5 landmarks (no 3-D model needed)."""
    le, re, nose, ml, mr = face.landmarks.astype(np.float64)
    iod = max(float(np.linalg.norm(re - le)), 1e-6)
    roll = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    # express the nose in the face's own frame (undo roll) so roll does not leak into yaw/pitch
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    rot = np.array([[c, -s], [s, c]])
    eye_mid = (le + re) / 2
    mouth_mid = (ml + mr) / 2
    n = rot @ (nose - eye_mid)
    m = rot @ (mouth_mid - eye_mid)
    yaw = float(n[0] / iod)
    pitch = float(n[1] / m[1]) if m[1] > 1e-6 else 0.0
    return {"roll_deg": roll, "yaw": yaw, "pitch": pitch, "inter_ocular": iod}


def sharpness(crop: np.ndarray) -> float:
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(face: Face, crop: np.ndarray, cfg: QualityConfig = QualityConfig()) -> QualityReport:
    """Check one face (its landmarks in the frame and its aligned crop) against the limits."""
    pose = pose_from_landmarks(face)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    brightness = float(grey.mean())
    clipped = float(np.mean((grey <= 5) | (grey >= 250)))
    sharp = sharpness(crop)
    metrics = {**{k: round(v, 3) for k, v in pose.items()}, "sharpness": round(sharp, 1),
               "brightness": round(brightness, 1), "clipped": round(clipped, 3), "score": round(face.score, 4)}
    reasons = []
    if face.score < cfg.min_score:
        reasons.append(f"unsure it is a face (score {face.score:.2f} < {cfg.min_score})")
    if pose["inter_ocular"] < cfg.min_inter_ocular:
        reasons.append(f"face too small: eyes {pose['inter_ocular']:.0f} px apart (< {cfg.min_inter_ocular:.0f}); come closer")
    if abs(pose["roll_deg"]) > cfg.max_roll_deg:
        reasons.append(f"head tilted {pose['roll_deg']:.0f} degrees (max {cfg.max_roll_deg:.0f}); hold your head straight")
    if abs(pose["yaw"]) > cfg.max_yaw:
        reasons.append(f"face turned sideways (yaw {pose['yaw']:+.2f}, max {cfg.max_yaw}); look at the camera")
    if not cfg.pitch_range[0] <= pose["pitch"] <= cfg.pitch_range[1]:
        reasons.append(f"head tipped up or down (pitch {pose['pitch']:.2f}); look straight ahead")
    if sharp < cfg.min_sharpness:
        reasons.append(f"image blurred (sharpness {sharp:.0f} < {cfg.min_sharpness:.0f}); hold still")
    if brightness < cfg.brightness_range[0]:
        reasons.append(f"face too dark (brightness {brightness:.0f}); more light needed")
    elif brightness > cfg.brightness_range[1]:
        reasons.append(f"face over-exposed (brightness {brightness:.0f})")
    if clipped > cfg.max_clipped:
        reasons.append(f"{100 * clipped:.0f}% of the face is clipped black/white; check lighting")
    return QualityReport(ok=not reasons, reasons=reasons, metrics=metrics)
