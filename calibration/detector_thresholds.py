"""A detector set's cascade score thresholds, tuned on the WIDER images it trained on.

Coordinate search, one net at a time in cascade order (P-Net, then R-Net, then O-Net, each over a few
values with the others fixed), maximising mean AP easy + medium on the *training* images
(index % holdout_every != 0): the held-out images docs/benchmarks.md reports are never looked at.
Why: a student P-Net is less sure of small faces than the teacher's, so at the teacher's 0.6 it drops
faces the (teacher-grade) R-Net and O-Net would have kept; a lower threshold hands them on. The winner
goes into the cards with `facegate distill export-detector --thresholds P R O`.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from facegate.convert.datasets import wider_dir
from facegate.convert.evaluate.wider import evaluate_wider
from facegate.edge.detect.mtcnn import REFERENCE_THRESHOLDS, CascadeConfig
from facegate.edge.registry import load_detector

log = logging.getLogger(__name__)

#: values tried per net (P-Net, R-Net, O-Net)
GRID: dict[int, tuple[float, ...]] = {0: (0.3, 0.4, 0.5, 0.6), 1: (0.5, 0.6, 0.7), 2: (0.6, 0.7, 0.8)}


def score_thresholds(detector: str, thresholds: tuple[float, float, float], wider: Path, out: Path,
                     fmt: str = "tflite", holdout_every: int = 4, max_images: int | None = None) -> dict:
    """AP of `detector` at `thresholds` on the WIDER training split (min face 20, the eval's settings)."""
    det = load_detector(detector, fmt=fmt, config=CascadeConfig(min_face_size=20.0, thresholds=thresholds))
    r = evaluate_wider(det, wider / "images", wider / "wider_face_val_bbx_gt.txt", wider / "eval_tools", out,
                       "facegate calibrate detector", max_images=max_images, progress=False,
                       holdout_every=holdout_every, training_split=True, timing_frames=1)
    return {"thresholds": list(thresholds), "ap_easy": r["ap_easy"], "ap_medium": r["ap_medium"],
            "ap_hard": r["ap_hard"], "objective": round((r["ap_easy"] + r["ap_medium"]) / 2, 4)}


def search_cascade_thresholds(detector: str, fmt: str = "tflite", wider: Path | None = None,
                              grid: dict[int, tuple[float, ...]] = GRID, holdout_every: int = 4,
                              max_images: int | None = None,
                              report: Callable[[dict], None] = lambda r: log.info("%s", r)) -> dict:
    """The coordinate search; `report` sees each tried setting as it is scored (the CLI prints them)."""
    wider = Path(wider) if wider else wider_dir()
    best = list(REFERENCE_THRESHOLDS)
    tried: dict[tuple, dict] = {}
    with tempfile.TemporaryDirectory(prefix="facegate-thresholds-") as tmp:
        for stage, values in grid.items():
            for v in values:
                t = tuple(best[:stage] + [v] + best[stage + 1:])
                if t not in tried:
                    tried[t] = score_thresholds(detector, t, wider, Path(tmp), fmt, holdout_every, max_images)
                    report(tried[t])
            best = list(max((r for t, r in tried.items() if all(t[i] == best[i] for i in range(3) if i != stage)),
                            key=lambda r: r["objective"])["thresholds"])
    return {"detector": detector, "split": f"WIDER training images (index % {holdout_every} != 0)",
            "max_images": max_images, "best": best, "tried": list(tried.values())}
