"""Face verification on a list of pairs (LFW View 2 or any pairs file)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from facegate.convert.evaluate.embeddings import embed_files
from facegate.convert.evaluate.faces import FaceFinder
from facegate.convert.evaluate.metrics import roc_curve, verification_summary
from facegate.convert.evaluate.pairs import Pair, check_images_exist
from facegate.convert.evaluate.report import plot_roc_det, plot_score_histogram, write_outputs
from facegate.edge.face.embed import Embedder

log = logging.getLogger(__name__)


def pair_scores(pairs: list[Pair], vectors: dict[Path, np.ndarray],
                probe_vectors: dict[Path, np.ndarray] | None = None) -> np.ndarray:
    """Cosine similarity of every pair (embeddings are unit length); with `probe_vectors`, the
    second image of each pair is taken from them (enrolled with one model, probed with another)."""
    a = np.stack([vectors[p.a] for p in pairs])
    b = np.stack([(vectors if probe_vectors is None else probe_vectors)[p.b] for p in pairs])
    return np.sum(a * b, axis=1)


def evaluate_pairs(pairs: list[Pair], embedder: Embedder, finder: FaceFinder, out_dir: Path, stem: str,
                   title: str, command: str, alignment: str | None = None, use_cache: bool = True,
                   progress: bool = True, probe_embedder: Embedder | None = None) -> dict:
    """Embed every image, score the pairs and write JSON, markdown, ROC/DET and histogram plots.

    `probe_embedder`: cross-model compatibility — the first image of each pair is embedded with
    `embedder` (the gallery), the second with `probe_embedder` (the board's model)."""
    check_images_exist(pairs)
    t0 = time.perf_counter()
    run = embed_files([p for pair in pairs for p in (pair.a, pair.b)], embedder, finder, alignment=alignment,
                      use_cache=use_cache, progress=progress)
    probe = None
    if probe_embedder is not None:
        probe = embed_files([pair.b for pair in pairs], probe_embedder, finder, use_cache=use_cache,
                            progress=progress).vectors
    scores = pair_scores(pairs, run.vectors, probe)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    summary = verification_summary(scores, same, folds)
    n_images = len(run.vectors)
    result = {
        "task": "verification", "title": title, "model": embedder.name, "identity": embedder.identity,
        **({"probe_model": probe_embedder.name} if probe_embedder is not None else {}),
        "detector": finder.detector.name, "alignment": alignment or embedder.spec.alignment,
        "command": command, **summary,
        "images": n_images, "images_without_face": len(run.no_face),
        "no_face_handling": "centred fallback box (the face-centred crop is embedded)",
        "no_face_examples": [str(p) for p in run.no_face[:20]],
        "seconds_total": round(time.perf_counter() - t0, 2),
        "ms_per_image_detect": round(1000 * run.seconds_detect / max(1, n_images), 2),
        "ms_per_image_embed": round(1000 * run.seconds_embed / max(1, n_images), 2),
    }
    roc = roc_curve(scores, same)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_roc_det(roc.fpr, roc.tpr, title, out_dir / f"{stem}_roc_det.png"),
             plot_score_histogram(scores, same, float(np.median(summary["fold_thresholds"])), title,
                                  out_dir / f"{stem}_scores.png")]
    result["plots"] = [p.name for p in plots]
    write_outputs(out_dir, stem, result, verification_markdown(result))
    return result


def _pct(v: float | None) -> str:
    return "n/a (too few negative pairs)" if v is None else f"{100 * v:.2f}%"


def verification_markdown(r: dict) -> str:
    return "\n".join([
        f"# {r['title']}: {r['model']}",
        "",
        f"Command: `{r['command']}`",
        "",
        "| metric | value |",
        "|---|---|",
        f"| pairs ({r['folds']} folds) | {r['pairs']} ({r['same_pairs']} same) |",
        f"| accuracy (mean ± std over folds) | {100 * r['accuracy_mean']:.2f}% ± {100 * r['accuracy_std']:.2f} |",
        f"| ROC AUC | {r['roc_auc']:.4f} |",
        f"| EER | {100 * r['eer']:.2f}% |",
        f"| TAR @ FAR 1e-2 | {_pct(r['tar_at_far_1e-2'])} |",
        f"| TAR @ FAR 1e-3 | {_pct(r['tar_at_far_1e-3'])} |",
        f"| images / without a detected face | {r['images']} / {r['images_without_face']} ({r['no_face_handling']}) |",
        f"| detector, alignment | {r['detector']}, {r['alignment']} |",
        f"| time per image: detect / embed | {r['ms_per_image_detect']} ms / {r['ms_per_image_embed']} ms |",
        "",
        *[f"![{p}]({p})" for p in r.get("plots", [])],
        "",
    ])
