#!/usr/bin/env python
"""How high can a 128-D student in FaceNet's space go on LFW with the networks available here?
(docs/benchmarks.md, "The embedder ceiling": why 99.2% in int8 is out of reach here).

Every network is scored on the same LFW crops (teacher detector, full View 2, 10 folds):

* the FaceNet teacher (its fp32 export) and the pretrained MobileFaceNet peer the student is built
  from: the peer's own 192-D embedding, and that embedding projected to 128-D by PCA (PCA fitted on
  the training faces) — the best a 128-D head on the peer's features can do *without* keeping the
  teacher's coordinates;
* the student's linear head on the peer's 512-D GDConv features, fitted exactly as `facegate distill
  embedder --student peer --epochs 0` fits it (ridge to the teacher's targets over four views of
  every training face, then the relational refinement), for a grid of refinement settings; each row
  also gives the held-out CelebA identities' numbers (cosine to the teacher, pair accuracy, TAR at
  FAR 1e-3), which are what a choice between settings may be based on — LFW is reported, never used
  to choose;
* flip-averaged embeddings (the crop and its mirror image) and score-level ensembles of two networks,
  to show what more compute or a second network would buy;
* optionally dlib's ResNet (`face_recognition`; not a facegate dependency: `pip install dlib-bin
  face_recognition_models face_recognition --no-deps`), on the same detector's boxes with dlib's own
  5-point alignment.

    python benchmarks/reproduce/embedder_ceiling.py [--out runs/students/ceiling] [--no-dlib]   # ~15 min (dlib +12)

Needs the cached teacher targets (any `facegate distill embedder` run builds them) and LFW under
../shared/datasets.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: (relational weight, peer share) of the head refinements compared; (10, 0.5) is the shipped head
GRID = ((0.0, 0.0), (10.0, 0.5), (10.0, 0.75), (10.0, 1.0), (30.0, 0.5), (100.0, 0.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/students/ceiling"))
    ap.add_argument("--no-dlib", action="store_true", help="skip dlib even when face_recognition is installed")
    ap.add_argument("--hold-out-every", type=int, default=8)
    args = ap.parse_args()

    from facegate.convert.datasets import lfw_dir
    from facegate.convert.distill.augment import AugmentConfig, augment_batch
    from facegate.convert.distill.embedder import NORMALISATION, label_ids, labelled_pairs, pair_accuracy
    from facegate.convert.distill.head import Refinement, head_features, refine_head, ridge_map
    from facegate.convert.distill.pipeline import default_photos, default_teacher, prepare_targets, split_targets
    from facegate.convert.evaluate.embeddings import embed_files
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.evaluate.metrics import roc_curve, tar_at_far
    from facegate.convert.evaluate.pairs import read_lfw_pairs
    from facegate.convert.evaluate.verification import verification_summary
    from facegate.convert.students.peer import PeerStudentConfig
    from facegate.edge.face.align import align_face
    from facegate.edge.face.embed import l2_normalise as unit
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import get_embedder, load_detector

    args.out.mkdir(parents=True, exist_ok=True)
    lfw = lfw_dir()
    pairs = read_lfw_pairs(lfw / "pairs.txt", lfw / "images")
    paths = list(dict.fromkeys(p for pair in pairs for p in (pair.a, pair.b)))
    index = {p: i for i, p in enumerate(paths)}
    ia, ib = np.array([index[p.a] for p in pairs]), np.array([index[p.b] for p in pairs])
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    rows: list[dict] = []

    def score(name: str, sims: np.ndarray, **extra) -> None:
        r = verification_summary(sims, same, folds)
        rows.append({"network": name, "lfw_accuracy": round(100 * r["accuracy_mean"], 2),
                     "lfw_std": round(100 * r["accuracy_std"], 2),
                     "lfw_tar_at_far_1e-3": round(100 * (r["tar_at_far_1e-3"] or 0), 1), **extra})
        print(json.dumps(rows[-1]), flush=True)

    def cosines(emb: np.ndarray) -> np.ndarray:
        emb = unit(emb)
        return np.sum(emb[ia] * emb[ib], 1)

    finder = FaceFinder(load_detector("mtcnn-teacher"))
    teacher = embed_files(paths, get_embedder(default_teacher()), finder, progress=True)
    s_teacher = cosines(np.stack([teacher.vectors[p] for p in paths]))
    score("FaceNet teacher (fp32)", s_teacher)

    config = PeerStudentConfig(embedding_dim=128)
    backbone, peer_embedding = config.build(), config.reference()
    crops = np.stack([align_face(img, finder.subject(p, img)[0], 112, "similarity112")
                      for p in paths for img in [load_rgb(p)]])
    f_lfw = head_features(backbone, crops, NORMALISATION)
    f_lfw_mirror = head_features(backbone, np.ascontiguousarray(crops[:, :, ::-1]), NORMALISATION)

    data = prepare_targets(default_photos(), progress=False)
    train, val = split_targets(data, args.hold_out_every)
    rng, aug = np.random.default_rng(0), AugmentConfig()
    views = [train.centre_crops(), train.centre_crops()[:, :, ::-1],
             augment_batch(train.canvases, rng, aug), augment_batch(train.canvases, rng, aug)]
    x = np.concatenate([head_features(backbone, np.ascontiguousarray(v), NORMALISATION) for v in views])
    y = np.tile(train.targets, (len(views), 1)).astype(np.float64)
    f_val, val_ids = head_features(backbone, np.ascontiguousarray(val.centre_crops()), NORMALISATION), label_ids(val.labels)

    peer = peer_embedding(f_lfw)
    s_peer = cosines(peer)
    score("MobileFaceNet peer, its own 192-D embedding", s_peer)
    train_peer = unit(peer_embedding(x[:len(train)]))
    mean = train_peer.mean(0)
    basis = np.linalg.svd(train_peer - mean, full_matrices=False)[2][:128]
    score("peer embedding, PCA to 128-D (no teacher coordinates)", cosines((unit(peer) - mean) @ basis.T))
    score("peer, flip-averaged", cosines(unit(peer) + unit(peer_embedding(f_lfw_mirror))))

    reference = peer_embedding(x)
    w0, b0 = ridge_map(x, y, 1e-2)
    s_shipped = None
    for weight, mix in GRID:
        w, b = (w0, b0) if weight == 0 else refine_head(x, y, reference, w0, b0, Refinement(weight=weight, peer_mix=mix),
                                                          progress=False)
        e_val = unit(f_val @ w + b)
        held = {"heldout_cosine_to_teacher": round(float(np.mean(np.sum(e_val * unit(val.targets), 1))), 4),
                "heldout_pair_accuracy": pair_accuracy(e_val, val_ids)["pair_accuracy"],
                "heldout_tar_at_far_1e-3": round(tar_at_far(roc_curve(*labelled_pairs(e_val, val_ids)), 1e-3), 4)}
        name = "student head, ridge only" if weight == 0 else f"student head, relational weight {weight:g}, peer share {mix:g}"
        sims = cosines(f_lfw @ w + b)
        score(name + (" (shipped setting)" if (weight, mix) == (10.0, 0.5) else ""), sims, **held)
        if (weight, mix) == (10.0, 0.5):
            s_shipped = sims
            score("student head (shipped setting), flip-averaged",
                  cosines(unit(f_lfw @ w + b) + unit(f_lfw_mirror @ w + b)))

    score("ensemble: teacher + peer (mean cosine)", (s_teacher + s_peer) / 2)
    score("ensemble: teacher + student head (shipped setting)", (s_teacher + s_shipped) / 2)

    if not args.no_dlib:
        try:
            import face_recognition
        except ImportError:
            print("face_recognition is not installed: dlib skipped", flush=True)
        else:
            vectors = []
            for p in paths:
                img = load_rgb(p)
                x1, y1, x2, y2 = (int(round(v)) for v in finder.subject(p, img)[0].box)
                vectors.append(face_recognition.face_encodings(img, [(y1, x2, y2, x1)], model="small")[0])
            s_dlib = cosines(np.stack(vectors))
            score("dlib ResNet (face_recognition 1.3.0, mtcnn boxes, dlib 5-point alignment)", s_dlib)
            score("ensemble: teacher + peer + dlib", (s_teacher + s_peer + s_dlib) / 3)
    finder.save()
    (args.out / "result.json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out / 'result.json'}")


if __name__ == "__main__":
    main()
