"""How faithfully quantised embedder files reproduce their float Keras source, on many held-out faces.

    python benchmarks/int8_fidelity.py FILE [FILE ...] [--source KERAS] [--data FOLDER] [--faces N]

The export's parity check uses a few dozen faces; to compare two int8 files of the same source (say
the unfused and the fused export, `git show REV:edge/models/... > old.tflite`) this embeds up to N
aligned faces of the held-out identities with the source and with every file and prints the mean and
1st-percentile cosine of each file to the source. It is the quantisation's own error, free of LFW's
fold-to-fold spread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facegate.calibration.faces import aligned_crops, sample_images
from facegate.convert.registry import resolve_embedder
from facegate.edge.embed import Embedder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--source", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="held-out face photos")
    ap.add_argument("--faces", type=int, default=400)
    args = ap.parse_args()
    source = resolve_embedder(args.source)
    crops, used = aligned_crops(sample_images(args.data, args.faces), source.spec.size, source.spec.alignment,
                                progress=False)
    reference = source.embed(crops)
    rows = {}
    for path in args.files:
        cosine = np.sum(reference * Embedder.from_file(path).embed(crops), axis=1)
        rows[str(path)] = {"faces": len(used), "cosine_mean": round(float(cosine.mean()), 5),
                           "cosine_p01": round(float(np.percentile(cosine, 1)), 5)}
        print(f"{path}: {len(used)} faces, cosine to source mean {cosine.mean():.4f}, 1st percentile "
              f"{np.percentile(cosine, 1):.4f}")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
