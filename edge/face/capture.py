"""Face crops worth keeping: JPEG-encoded aligned crops (what a gallery stores with `keep_crops`) and the
enrolment station's choice of the best camera views."""
from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np

from facegate.edge.detect.face import pick_face
from facegate.edge.door.tracking import view_quality
from facegate.edge.errors import PresentationAttackError
from facegate.edge.face.quality import sharpness

log = logging.getLogger(__name__)


def encode_crop(crop: np.ndarray) -> bytes:
    """An RGB crop as JPEG bytes (quality 92)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return buf.tobytes()


def best_camera_frames(pipe, frames, keep: int, max_frames: int,
                       say: Callable[[str], None] = log.info) -> tuple[list, list]:
    """Enrollment station: watch the camera, tell the person what to fix (the quality gate's
    reason, at most once per distinct message in a row), and keep the `keep` best views that pass
    every gate (bigger, sharper, more frontal first). Near-identical views are kept once. When the
    pipeline has a liveness stage, a view the nets call a photo or a screen is never kept, and if the
    camera saw only such views, PresentationAttackError: nobody enrols a photo of someone else."""
    candidates = []  # (merit, vector, crop)
    last_hint = None
    attacks = 0
    for i, frame in enumerate(frames):
        if i >= max_frames:
            break
        face = pick_face(pipe.detector.detect(frame), frame.shape, pipe.config.face_policy)
        if face is None:
            hint = "step in front of the camera"
        else:
            crop = pipe.crop(frame, face)
            report = pipe.faces_quality(frame, face)
            live = pipe.check_liveness(frame, face) if report.ok and pipe.liveness is not None else None
            if live is not None and not live.live:
                attacks += 1
                hint = "this looks like a photo or a screen: the person must stand at the camera"
            elif report.ok:
                vec = pipe.embedder.embed(crop[None])[0]
                if all(float(vec @ v) < 0.995 for _, v, _ in candidates):
                    candidates.append((view_quality(face) * min(sharpness(crop), 500.0), vec, crop))
                hint = "hold still" if len(candidates) < keep else None
            else:
                hint = report.reasons[0]
        if hint and hint != last_hint:
            say(f"  {hint}")
        last_hint = hint
        if len(candidates) >= 3 * keep:
            break
    if attacks:
        log.warning("enrolment: %d camera views refused by the liveness check", attacks)
    if attacks and not candidates:
        raise PresentationAttackError(f"the camera saw a photo or a screen, not a person ({attacks} frames "
                                      "refused by the liveness check); nothing enrolled")
    candidates.sort(key=lambda c: -c[0])
    best = candidates[:keep]
    return [v for _, v, _ in best], [c for _, _, c in best]
