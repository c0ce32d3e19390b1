"""What a gallery's template storage costs in accuracy: LFW View 2 and celeba_dev pairs scored with the
enrolled side stored as float32, float16 or int8 (per-template scale), optionally PCA-reduced, and the
probe in float (projected the same way), as the door and the site score them (the int8 integer product
only picks candidates; their scores are these).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.convert.evaluate.embeddings import embed_files
from facegate.convert.evaluate.faces import FaceFinder
from facegate.convert.evaluate.metrics import verification_summary
from facegate.convert.evaluate.pairs import Pair, check_images_exist, identity_images
from facegate.convert.evaluate.report import write_outputs
from facegate.edge.face.embed import Embedder
from facegate.edge.gallery.fileformat import as_stored, template_bytes
from facegate.edge.gallery.projection import Projection

log = logging.getLogger(__name__)

STORAGES = ("float32", "float16", "int8")


def identity_pairs(paths: list[Path], labels: list[str], folds: int = 10, seed: int = 0) -> list[Pair]:
    """10-fold pairs from identity-labelled images: every same-identity pair, and as many different-identity
    pairs drawn within the same fold (identities are split into folds, so no identity spans two folds)."""
    rng = np.random.default_rng(seed)
    people = sorted(set(labels))
    folds = max(1, min(folds, len(people) // 2))       # at least two identities per fold for its impostors
    fold_of = {p: i % folds for i, p in enumerate(people)}
    by_person: dict[str, list[Path]] = {}
    for path, label in zip(paths, labels):
        by_person.setdefault(label, []).append(path)
    pairs: list[Pair] = []
    for fold in range(folds):
        members = [p for p in people if fold_of[p] == fold]
        genuine = [Pair(a, b, True, fold) for p in members for i, a in enumerate(by_person[p])
                   for b in by_person[p][i + 1:]]
        pairs += genuine
        for _ in range(len(genuine)):
            x, y = rng.choice(len(members), size=2, replace=False)
            pairs.append(Pair(rng.choice(by_person[members[x]]), rng.choice(by_person[members[y]]), False, fold))
    return pairs


def storage_scores(pairs: list[Pair], vectors: dict[Path, np.ndarray], dtype: str,
                   projection: Projection | None = None) -> np.ndarray:
    """Each pair's score with its first image enrolled (stored as `dtype`, PCA-reduced with `projection`)
    and its second as the probe."""
    enrolled = np.stack([vectors[p.a] for p in pairs])
    probes = np.stack([vectors[p.b] for p in pairs])
    if projection is not None:
        enrolled, probes = projection.apply(enrolled), projection.apply(probes)
    enrolled = as_stored(enrolled / np.linalg.norm(enrolled, axis=1, keepdims=True), dtype)
    probes = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    return np.sum(enrolled * probes, axis=1)


def storages(projections: list[Projection]) -> dict[str, tuple[str, Projection | None]]:
    """label -> (dtype, projection): the three precisions, then float32 and int8 of each projection."""
    out: dict[str, tuple[str, Projection | None]] = {d: (d, None) for d in STORAGES}
    for projection in projections:
        for dtype in ("float32", "int8"):
            out[f"{dtype}+pca{projection.dims}"] = (dtype, projection)
    return out


def evaluate_storage(embedder: Embedder, finder: FaceFinder, sets: dict[str, list[Pair]], out_dir: Path,
                     command: str, use_cache: bool = True, progress: bool = True,
                     projections: list[Projection] | None = None) -> dict:
    """Accuracy, TAR at FAR 1e-3 and the loss against float32 for every storage on every pair set."""
    dim = int(embedder.card.embedding_dim or 0)
    kinds = storages(projections or [])
    result: dict = {"task": "template_storage", "model": embedder.name, "identity": embedder.identity,
                    "command": command, "dim": dim, "sets": {},
                    "bytes_per_template": {label: template_bytes(dtype, 1, projection.dims if projection else dim)
                                           for label, (dtype, projection) in kinds.items()},
                    "projections": {f"pca{p.dims}": {"sha256": p.sha256, **p.info} for p in projections or []}}
    for name, pairs in sets.items():
        check_images_exist(pairs)
        run = embed_files([p for pair in pairs for p in (pair.a, pair.b)], embedder, finder, use_cache=use_cache,
                          progress=progress)
        same = np.array([p.same for p in pairs])
        folds = np.array([p.fold for p in pairs])
        rows = {}
        for label, (dtype, projection) in kinds.items():
            s = verification_summary(storage_scores(pairs, run.vectors, dtype, projection), same, folds)
            rows[label] = {"accuracy_mean": s["accuracy_mean"], "accuracy_std": s["accuracy_std"],
                           "tar_at_far_1e-3": s["tar_at_far_1e-3"], "roc_auc": s["roc_auc"], "eer": s["eer"]}
        for dtype in kinds:
            rows[dtype]["accuracy_loss_pt"] = round(100 * (rows["float32"]["accuracy_mean"]
                                                           - rows[dtype]["accuracy_mean"]), 4)
        result["sets"][name] = {"pairs": len(pairs), "same_pairs": int(same.sum()),
                                "images_without_face": len(run.no_face), "storages": rows}
    write_outputs(out_dir, "template_storage", result, storage_markdown(result))
    return result


def storage_markdown(r: dict) -> str:
    lines = [f"# Template storage — {r['model']}", "", f"`{r['command']}`", "",
             "| pairs | storage | bytes per template | accuracy (10-fold) | loss vs float32 | TAR @ FAR 1e-3 | EER |",
             "|---|---|---|---|---|---|---|"]
    for name, s in r["sets"].items():
        for dtype, row in s["storages"].items():
            tar = row["tar_at_far_1e-3"]
            lines.append(f"| {name} ({s['pairs']}) | {dtype} | {r['bytes_per_template'][dtype]} | "
                         f"{100 * row['accuracy_mean']:.3f}% ± {100 * row['accuracy_std']:.2f} | "
                         f"{row['accuracy_loss_pt']:+.3f} pt | {'n/a' if tar is None else f'{100 * tar:.2f}%'} | "
                         f"{100 * row['eer']:.2f}% |")
    return "\n".join(lines) + "\n"


def default_sets(lfw_root: Path, celeba_folder: Path | None, per_identity: int, max_pairs: int | None) -> dict:
    from facegate.convert.evaluate.pairs import balanced_subset, read_lfw_pairs
    sets = {"LFW View 2": balanced_subset(read_lfw_pairs(lfw_root / "pairs.txt", lfw_root / "images"), max_pairs)}
    if celeba_folder is not None:
        paths, labels = identity_images(celeba_folder, per_identity)
        sets["celeba_dev"] = balanced_subset(identity_pairs(paths, labels), max_pairs)
    return sets
