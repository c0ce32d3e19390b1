"""Do more cameras' live faces in training make the fine-tuned liveness nets generalise to a new source?

pad_dev's live class is three sources' cameras (and NUAA's one webcam is most of it); a net fine-tuned
on two of them may learn "this camera is live". This runs the leave-one-source-out protocol of
`facegate eval pad --protocol leave-one-source-out` (the shipped recipe: both nets, 8 epochs, all layers,
threshold at BPCER 5% on the other sources' validation split) with live faces of many other cameras
added to every fold's training split: LFW photos of people outside pairs.txt (web photos of real
people; never an attack), at most two per person. Only the training split grows; thresholds and
judgements use pad_dev alone.

    python benchmarks/reproduce/pad_extra_live.py OUT [--extra 500] [--keep-pretrained 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def lfw_live_samples(lfw_root: Path, count: int, per_person: int = 2, seed: int = 0) -> list:
    """`count` LFW training photos as live PadSamples, people in a seeded order, `per_person` each."""
    from facegate.convert.distill.sources import lfw_training_photos
    from facegate.convert.pad.data import PadSample

    by_person: dict[str, list[Path]] = {}
    for photo in lfw_training_photos(lfw_root):
        by_person.setdefault(photo.path.parent.name, []).append(Path(photo.path))
    people = sorted(by_person)
    np.random.default_rng(seed).shuffle(people)
    samples = [PadSample(path, True, "none", "lfw", f"lfw-{person}")
               for person in people for path in sorted(by_person[person])[:per_person]]
    return samples[:count]


def main() -> None:
    from facegate.convert.datasets import lfw_dir, shared_datasets
    from facegate.convert.evaluate.pad import judge
    from facegate.convert.pad.data import face_boxes, load_pad_dev
    from facegate.convert.pad.finetune import FinetuneConfig, load_images
    from facegate.convert.pad.train import leave_one_source_out
    from facegate.edge.registry import load_detector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="work folder (face boxes, the fold nets)")
    ap.add_argument("--extra", type=int, default=500, help="LFW live faces added to each fold's training split")
    ap.add_argument("--keep-pretrained", type=float, default=0.0, help="as `facegate eval pad --keep-pretrained`")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bpcer", type=float, default=0.05)
    args = ap.parse_args()
    weights = shared_datasets().parent / "pretrained" / "minifasnet"
    samples = load_pad_dev(shared_datasets() / "pad_dev")
    extra = lfw_live_samples(lfw_dir(), args.extra)
    detector = load_detector()
    boxes = face_boxes(samples, detector, args.out / "pad_boxes.npz")
    boxes.update(face_boxes(extra, detector, args.out / "extra_boxes.npz"))
    images = load_images(samples + extra)
    print(f"{len(extra)} extra live faces of {len({s.subject for s in extra})} LFW people")
    folds = leave_one_source_out(samples, images, boxes, weights, args.out / "work", [], args.epochs, args.bpcer,
                                 FinetuneConfig(keep_pretrained=args.keep_pretrained), extra_train=extra)
    print("| held-out source | threshold | ACER | BPCER | APCER worst | AUC |")
    print("|---|---|---|---|---|---|")
    acers = []
    for fold in folds:
        (ours, scores), = fold["scorers"]
        m = judge(ours, scores, [s for s in samples if s.source == fold["source"]])
        acers.append(m["acer"])
        print(f"| {fold['source']} | {m['threshold']:.3f} | {100 * m['acer']:.1f}% | {100 * m['bpcer']:.1f}% | "
              f"{100 * m['apcer_worst']:.1f}% | {m['auc']:.2f} |", flush=True)
    print(f"mean ACER: {100 * np.mean(acers):.1f}%")


if __name__ == "__main__":
    main()
