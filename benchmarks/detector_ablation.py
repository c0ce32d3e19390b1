"""Held-out WIDER AP with some student nets inside the teacher cascade: which stage loses accuracy.

    python benchmarks/detector_ablation.py runs/distill/detector-v4 pnet,rnet
    python benchmarks/detector_ablation.py runs/distill/detector-v6 onet.prob    # O-Net's score only
    python benchmarks/detector_ablation.py runs/distill/detector-v6 onet.box     # O-Net's box only

The named nets come from the run folder's <net>.keras (converted to LiteRT in a temporary
folder); the others are the committed teacher's. `<net>.<output>` (prob, box, landmarks) takes
only that output from the student and the rest from the teacher net: which answer loses AP.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from facegate.convert.datasets import wider_dir
from facegate.convert.distill.detector import tflite_backend
from facegate.convert.evaluate.wider import evaluate_wider
from facegate.edge.detect.mtcnn import MTCNN, CascadeConfig
from facegate.edge.registry import load_detector

OUTPUT_WIDTH = {"prob": 2, "box": 4, "landmarks": 10}


class MixedOutputs:
    """A teacher net whose named outputs are replaced by a student's (same inputs, same shapes)."""

    def __init__(self, teacher, student, take: set[str]):
        self.teacher, self.student = teacher, student
        self.widths = {OUTPUT_WIDTH[t] for t in take}
        self.name = f"{teacher.name}+student-{'+'.join(sorted(take))}"

    def __getattr__(self, item):
        return getattr(self.teacher, item)

    def run(self, inputs) -> list[np.ndarray]:
        mine = {o.shape[-1]: o for o in self.student.run(inputs)}
        return [mine[o.shape[-1]] if o.shape[-1] in self.widths else o for o in self.teacher.run(inputs)]


def main(run: Path, which: list[str]) -> dict:
    teacher = load_detector("mtcnn-teacher", fmt="tflite")
    tmp = Path(tempfile.mkdtemp(prefix="facegate-ablation-"))
    nets = []
    for n in ("pnet", "rnet", "onet"):
        parts = {w.split(".", 1)[1] for w in which if w.startswith(n + ".")}
        if n in which or parts:
            student = tflite_backend(keras.saving.load_model(run / f"{n}.keras", compile=False), tmp)
            nets.append(MixedOutputs(getattr(teacher, n), student, parts) if parts else student)
        else:
            nets.append(getattr(teacher, n))
    det = MTCNN(*nets, config=CascadeConfig(min_face_size=20.0), name=f"teacher+student-{'+'.join(which)}")
    w = wider_dir()
    return evaluate_wider(det, w / "images", w / "wider_face_val_bbx_gt.txt", w / "eval_tools", tmp / "out",
                          " ".join(sys.argv), progress=False, holdout_every=4, timing_frames=1)


if __name__ == "__main__":
    r = main(Path(sys.argv[1]), sys.argv[2].split(","))
    print(f"{sys.argv[1]} student {sys.argv[2]} in the teacher cascade, held-out WIDER AP "
          f"{r['ap_easy']:.3f} / {r['ap_medium']:.3f} / {r['ap_hard']:.3f}")
