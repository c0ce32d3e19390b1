#!/usr/bin/env python
"""Which layer of the pretrained MobileFaceNet should the student's 128-D head read, and how many
views / how much ridge does the closed-form fit want? (docs/benchmarks.md, "FaceNet student").

For three candidate layers (the 512-D GDConv output, the 512-D 1x1 conv after it, the peer's own
192-D embedding) the features of every training face are computed once for the clean crop, its
mirror image and two door-camera augmentations; the ridge fit to the teacher's targets is then
solved for 2 or 4 views and three ridge strengths, and scored on the held-out CelebA identities
(mean cosine to the teacher, same/different-person pair accuracy). Needs the cached teacher targets
(`facegate distill pack --out X` or any `facegate distill embedder` run builds them).

    python benchmarks/peer_head_layers.py            # ~6 min on 2 CPU cores
"""
from __future__ import annotations

import argparse

import numpy as np

LAYERS = ("peer_logits_separableconv2d", "peer_logits_conv", "peer_embedding")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold-out-every", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import keras

    from facegate.convert.distill.augment import AugmentConfig, augment_batch
    from facegate.convert.distill.embedder import label_ids, pair_accuracy
    from facegate.convert.distill.head import ridge_map
    from facegate.convert.distill.pipeline import default_photos, prepare_targets, split_targets
    from facegate.convert.students.peer import PEER_NORMALISATION, import_peer
    from facegate.edge.embed import normalise

    data = prepare_targets(default_photos(), progress=False)
    train, val = split_targets(data, args.hold_out_every)
    peer = import_peer()
    probe = keras.Model(peer.input, [peer.get_layer(n).output for n in LAYERS])

    def features(crops: np.ndarray) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = [[] for _ in LAYERS]
        for i in range(0, len(crops), 128):
            for part, out in zip(parts, probe(normalise(np.ascontiguousarray(crops[i:i + 128]), PEER_NORMALISATION))):
                part.append(np.asarray(out, np.float64).reshape(len(out), -1))
        return [np.concatenate(p) for p in parts]

    rng = np.random.default_rng(args.seed)
    views = [train.centre_crops(), train.centre_crops()[:, :, ::-1],
             augment_batch(train.canvases, rng, AugmentConfig()), augment_batch(train.canvases, rng, AugmentConfig())]
    per_view = [features(v) for v in views]
    held = features(val.centre_crops())
    ids = label_ids(val.labels)
    print(f"{len(train)} training faces, {len(val)} held-out faces; teacher held-out pair accuracy "
          f"{pair_accuracy(val.targets, ids)['pair_accuracy']:.4f}")
    print("| layer | dim | peer alone: pair acc | views | ridge | held-out cosine to teacher | pair acc |")
    print("|---|---|---|---|---|---|---|")
    for j, name in enumerate(LAYERS):
        unit = held[j] / np.linalg.norm(held[j], axis=1, keepdims=True)
        alone = pair_accuracy(unit, ids)["pair_accuracy"]
        for n_views in (2, 4):
            x = np.concatenate([per_view[v][j] for v in range(n_views)])
            y = np.concatenate([train.targets] * n_views).astype(np.float64)
            for ridge in (1e-3, 1e-2, 1e-1):
                w, bias = ridge_map(x, y, ridge)        # the fit `facegate distill embedder --student peer` uses
                e = held[j] @ w + bias
                e /= np.linalg.norm(e, axis=1, keepdims=True)
                cos = float(np.mean(np.sum(e * val.targets, 1)))
                print(f"| {name} | {x.shape[1]} | {alone:.4f} | {n_views} | {ridge:g} | {cos:.4f} | "
                      f"{pair_accuracy(e, ids)['pair_accuracy']:.4f} |")


if __name__ == "__main__":
    main()
