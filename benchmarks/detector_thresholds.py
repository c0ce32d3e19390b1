"""Tune a student detector's cascade score thresholds on the WIDER images it trained on.

    python benchmarks/detector_thresholds.py DETECTOR [--out runs/students/thresholds.json]

Coordinate search, one net at a time in cascade order (P-Net, then R-Net, then O-Net, each over a
few values with the others fixed), maximising mean AP easy + medium on the *training* images
(index % 4 != 0): the 101 held-out images that docs/benchmarks.md reports are never looked at.
Why: a student P-Net is less sure of small faces than the teacher's, so at the teacher's 0.6 it
drops faces the (teacher-grade) R-Net and O-Net would have kept; a lower threshold hands them on.
The winner goes into the cards with `facegate distill export-detector --thresholds P R O`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from facegate.convert.datasets import wider_dir
from facegate.convert.evaluate.wider import evaluate_wider
from facegate.edge.detect.mtcnn import CascadeConfig
from facegate.edge.registry import load_detector

GRID = {0: (0.3, 0.4, 0.5, 0.6), 1: (0.5, 0.6, 0.7), 2: (0.6, 0.7, 0.8)}


def score(detector: str, thresholds: tuple[float, float, float], tmp: Path) -> dict:
    det = load_detector(detector, fmt="tflite", config=CascadeConfig(min_face_size=20.0, thresholds=thresholds))
    w = wider_dir()
    r = evaluate_wider(det, w / "images", w / "wider_face_val_bbx_gt.txt", w / "eval_tools", tmp, "tune",
                       progress=False, holdout_every=4, training_split=True, timing_frames=1)
    return {"thresholds": list(thresholds), "ap_easy": r["ap_easy"], "ap_medium": r["ap_medium"],
            "ap_hard": r["ap_hard"], "objective": round((r["ap_easy"] + r["ap_medium"]) / 2, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("detector")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facegate-thresholds-"))
    best = [0.6, 0.7, 0.8]
    tried: dict[tuple, dict] = {}
    for stage, values in GRID.items():
        for v in values:
            t = tuple(best[:stage] + [v] + best[stage + 1:])
            if t not in tried:
                tried[t] = score(args.detector, t, tmp)
                print(json.dumps(tried[t]), flush=True)
        best = list(max((r for t, r in tried.items() if all(t[i] == best[i] for i in range(3) if i != stage)),
                        key=lambda r: r["objective"])["thresholds"])
    result = {"detector": args.detector, "split": "WIDER training images (index % 4 != 0)", "best": best,
              "tried": list(tried.values())}
    print(f"best thresholds on the training images: {best}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
