"""Compare student widths for one MTCNN net before a long run: train on a run's cached crops for a
few epochs and print the loss to the teacher on held-out crops (no OHEM).

    python benchmarks/detector_widths.py runs/distill/detector/data/pnet.npz pnet 10,16,32 16,24,32
    python benchmarks/detector_widths.py runs/distill/detector-v3/data/rnet.npz rnet 28,48,64,128 32,64,96,128 --train 40000
    python benchmarks/detector_widths.py runs/distill/detector/data/onet.npz onet 32,64,64,128,256 32,96,128,192,256

docs/benchmarks.md records what this printed for the shipped choices (8 epochs each).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", type=Path, help="<run>/data/<net>.npz written by `facegate distill detector`")
    ap.add_argument("net", choices=["pnet", "rnet", "onet"])
    ap.add_argument("widths", nargs="+", help="comma-separated channel widths, one set per candidate")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=None, help="held-out crops (default 2,000; R-Net 4,000; O-Net 2,500)")
    ap.add_argument("--train", type=int, default=None, help="cap on training crops (default: all the rest)")
    args = ap.parse_args()

    import tensorflow as tf

    from facegate.convert.distill.detector import DetectorDistillConfig, detector_losses, train_net
    from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets

    with np.load(args.samples) as z:
        data = {k: z[k] for k in z.files}
    held = args.held_out or {"pnet": 2000, "rnet": 4000, "onet": 2500}[args.net]
    order = np.random.default_rng(0).permutation(len(data["x"]))
    val_idx = order[:held]
    train_idx = order[held:held + args.train] if args.train else order[held:]
    train = {k: v[train_idx] for k, v in data.items()}
    val = {k: v[val_idx] for k, v in data.items()}
    weights = {"cls": 1.0, "box": 0.5, "landmarks": 5.0 if args.net == "onet" else 1.0}
    for spec in args.widths:
        widths = tuple(int(w) for w in spec.split(","))
        model = build_student_nets(DetectorStudentConfig(**{args.net: widths}))[args.net]
        cfg = DetectorDistillConfig(out=Path(tempfile.mkdtemp(prefix="facegate-widths-")), progress=False,
                                    epochs={"pnet": args.epochs, "rnet": args.epochs, "onet": args.epochs},
                                    loss_weights=weights)
        train_net(args.net, model, train, cfg)
        targets = {k: val[k] for k in ("prob", "box", "landmarks") if k in val}
        terms = detector_losses(model(tf.constant(val["x"].astype(np.float32))), targets, weights, 1.0)
        print(f"{args.net} {spec}: {model.count_params()} parameters, held-out loss "
              + ", ".join(f"{k} {float(v):.4f}" for k, v in terms.items()))


if __name__ == "__main__":
    main()
