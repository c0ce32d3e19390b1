"""Time facegate's MTCNN cascade against the reference `mtcnn` 1.0.0 package on the same photos.

    python benchmarks/reproduce/cascade_vs_reference.py [--lfw N] [--wider N]

Both detect on identical RGB arrays; each is warmed up once, then every image is timed once per
repeat and the median per image is reported. Needs the `dev` extra (the reference package).
"""
from __future__ import annotations

import argparse

import numpy as np

from facegate.convert.datasets import shared_datasets
from facegate.edge.images import load_rgb
from facegate.edge.registry import load_detector
from facegate.edge.timing import sample_seconds


def median_of_best_ms(fn, images, repeats) -> float:
    """Median over the images of each image's best time of `repeats` calls (one warm-up call first)."""
    fn(images[0])
    return 1000 * float(np.median([min(sample_seconds(lambda: fn(img), repeats, warmup=0)) for img in images]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=int, default=20, help="LFW photos (250x250)")
    ap.add_argument("--wider", type=int, default=10, help="WIDER photos (~1024 px)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from mtcnn import MTCNN as Reference

    ref = Reference()
    data = shared_datasets()
    sets = {
        "LFW 250x250": [load_rgb(p) for p in sorted((data / "lfw" / "images").rglob("*.jpg"))[:args.lfw]],
        "WIDER ~1024px": [load_rgb(p) for p in sorted((data / "wider_val_dev" / "images").rglob("*.jpg"))[:args.wider]],
    }
    ours = {fmt: load_detector(fmt=fmt) for fmt in ("tflite", "onnx")}
    print("| images | mtcnn 1.0.0 (TF) | facegate + LiteRT | facegate + ONNX Runtime |")
    print("|---|---|---|---|")
    for name, imgs in sets.items():
        r = median_of_best_ms(ref.detect_faces, imgs, args.repeats)
        t = median_of_best_ms(ours["tflite"].detect, imgs, args.repeats)
        o = median_of_best_ms(ours["onnx"].detect, imgs, args.repeats)
        print(f"| {name} ({len(imgs)}) | {r:.1f} ms | {t:.1f} ms ({r / t:.1f}x) | {o:.1f} ms ({r / o:.1f}x) |")


if __name__ == "__main__":
    main()
