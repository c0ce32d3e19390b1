"""A door's own liveness threshold, from live frames of its own camera.

A liveness set's card threshold was chosen on pad_dev's cameras; on another camera the live scores
move and people are turned away (docs/benchmarks.md: held-out MSU subjects, BPCER 33%). A site can
always record its own people at install, never its attackers, so the threshold is set from live faces
alone, at a target BPCER; attack photos of that camera, where a site has some, show what that threshold
lets through. Measured on pad_dev's sources (benchmarks/reproduce/pad_site_threshold.py), this brings the
published MiniFASNet pair to a mean ACER of 5% on sources it never saw.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.edge.errors import DatasetError

log = logging.getLogger(__name__)
#: fewer live faces than this make a BPCER-5% threshold rest on a handful of people
MIN_LIVE_FACES = 100
#: the `[liveness] threshold` range the door configuration accepts
THRESHOLD_RANGE = (0.001, 0.999)


def face_scores(checker, detector, paths: Iterable[Path], progress: bool = False) -> tuple[np.ndarray, int]:
    """The fused liveness score of the subject face of each image (images without a face are skipped
    and counted: a live person the detector misses is a detector problem, not a threshold one)."""
    from facegate.edge.detect.face import pick_face
    from facegate.edge.images import load_rgb
    scores, no_face = [], 0
    for path in tqdm(list(paths), desc="liveness", unit="img", disable=not progress):
        rgb = load_rgb(path)
        face = pick_face(detector.detect(rgb), rgb.shape)
        if face is None:
            no_face += 1
            continue
        scores.append(checker.check(rgb, face.box).score)
    return np.array(scores, np.float64), no_face


def site_threshold(checker, detector, live: list[Path], spoof: list[Path] | None = None, bpcer: float = 0.05,
                   progress: bool = False) -> dict:
    """The threshold that refuses `bpcer` of this camera's live faces, and what it does to its attacks."""
    from facegate.convert.pad.metrics import card_threshold, threshold_at_bpcer
    if not live:
        raise DatasetError("no live images given: record the door's own people with its camera first")
    if not 0 < bpcer < 0.5:
        raise DatasetError(f"--bpcer must be between 0 and 0.5, not {bpcer}")
    live_scores, live_no_face = face_scores(checker, detector, live, progress)
    if not len(live_scores):
        raise DatasetError(f"no face found in any of the {len(live)} live images")
    threshold = card_threshold(np.clip(threshold_at_bpcer(live_scores, bpcer), *THRESHOLD_RANGE))
    out = {"threshold": threshold, "card_threshold": checker.threshold, "target_bpcer": bpcer,
           "live_faces": int(len(live_scores)), "live_without_face": live_no_face,
           "bpcer": round(float((live_scores < threshold).mean()), 4),
           "bpcer_at_card_threshold": round(float((live_scores < checker.threshold).mean()), 4),
           "warnings": []}
    if len(live_scores) < MIN_LIVE_FACES:
        out["warnings"].append(f"only {len(live_scores)} live faces: record at least {MIN_LIVE_FACES} "
                               "(several people, the door's light at different times of day)")
    if spoof:
        spoof_scores, spoof_no_face = face_scores(checker, detector, spoof, progress)
        accepted = int((spoof_scores >= threshold).sum())
        out.update({"attacks": len(spoof), "attacks_without_face": spoof_no_face, "attacks_accepted": accepted,
                    "apcer": round(accepted / len(spoof), 4)})
        if accepted:
            out["warnings"].append(f"{accepted} of {len(spoof)} attack images would be accepted at this threshold")
    return out
