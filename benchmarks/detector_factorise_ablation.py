"""Held-out WIDER AP of one teacher net factorised at depth multiplier m, alone in the teacher cascade:
SVD split only vs SVD + ridge refit (issue 6, stage 8).

    python benchmarks/detector_factorise_ablation.py runs/distill/detector-f3 onet 3

The refit uses the run's cached cascade-order crops (`<run>/data/<net>.npz`, the first 20,000 of a
seeded draw, as `facegate distill detector --factorise` does). Prints both AP triples.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from facegate.convert.distill.detector import REFIT_CROPS
from facegate.convert.students import factorize
from facegate.convert.students.mtcnn import build_factorised
from facegate.convert.teachers.mtcnn import build_teacher_net

sys.path.insert(0, str(Path(__file__).parent))
import detector_ablation  # noqa: E402


def main(run: Path, net: str, multiplier: int) -> None:
    teacher = build_teacher_net(net)
    with np.load(run / "data" / f"{net}.npz") as z:
        crops = z["x"]
    pick = np.sort(np.random.default_rng(0).permutation(len(crops))[:REFIT_CROPS])
    for stage in ("svd", "refit"):
        student = build_factorised(net, multiplier)
        factorize.transfer(student, teacher)
        if stage == "refit":
            factorize.refit(student, teacher, crops[pick].astype(np.float32))
        folder = Path(tempfile.mkdtemp(prefix=f"facegate-fact-{net}-"))
        student.save(folder / f"{net}.keras")
        r = detector_ablation.main(folder, [net])
        print(f"{net} m={multiplier} {stage}: held-out WIDER AP {r['ap_easy']:.3f} / {r['ap_medium']:.3f} / "
              f"{r['ap_hard']:.3f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
