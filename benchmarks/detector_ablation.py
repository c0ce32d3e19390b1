"""Held-out WIDER AP with some student nets inside the teacher cascade: which stage loses accuracy.

    python benchmarks/detector_ablation.py runs/distill/detector-v4 pnet,rnet

The named nets come from the run folder's <net>.keras (converted to LiteRT in a temporary
folder); the others are the committed teacher's.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import keras

from facegate.convert.datasets import wider_dir
from facegate.convert.distill.detector import tflite_backend
from facegate.convert.evaluate.wider import evaluate_wider
from facegate.edge.detect.mtcnn import MTCNN, CascadeConfig
from facegate.edge.registry import load_detector


def main(run: Path, which: list[str]) -> dict:
    teacher = load_detector("mtcnn-teacher", fmt="tflite")
    tmp = Path(tempfile.mkdtemp(prefix="facegate-ablation-"))
    nets = [tflite_backend(keras.saving.load_model(run / f"{n}.keras", compile=False), tmp) if n in which
            else getattr(teacher, n) for n in ("pnet", "rnet", "onet")]
    det = MTCNN(*nets, config=CascadeConfig(min_face_size=20.0), name=f"teacher+student-{'+'.join(which)}")
    w = wider_dir()
    return evaluate_wider(det, w / "images", w / "wider_face_val_bbx_gt.txt", w / "eval_tools", tmp / "out",
                          " ".join(sys.argv), progress=False, holdout_every=4, timing_frames=1)


if __name__ == "__main__":
    r = main(Path(sys.argv[1]), sys.argv[2].split(","))
    print(f"{sys.argv[1]} student {sys.argv[2]} in the teacher cascade, held-out WIDER AP "
          f"{r['ap_easy']:.3f} / {r['ap_medium']:.3f} / {r['ap_hard']:.3f}")
