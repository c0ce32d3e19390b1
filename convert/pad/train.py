"""The whole liveness set from the pretrained weights: face boxes on pad_dev, a subject-disjoint split,
fine-tuning of both nets, the fused threshold at a target BPCER on the validation split, APCER per
attack type there, and the export of every precision with its card (`facegate liveness train`)."""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from facegate.convert.pad.data import face_boxes, load_pad_dev, subject_split
from facegate.convert.pad.export import ThresholdSplit, export_set, fine_tuned_source, representative_crops
from facegate.convert.pad.finetune import FinetuneConfig, finetune, load_images, plot_history
from facegate.convert.pad.metrics import card_threshold, pad_metrics, threshold_at_bpcer
from facegate.convert.pad.minifasnet import ACTIVATIONS, PRETRAINED, pretrained, with_relu
from facegate.convert.pad.scorers import fused_scores
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)
NETS = ("minifasnet-v2", "minifasnet-v1se")


def starting_nets(name: str, weights_dir: Path, activation: str = "prelu") -> tuple:
    """(the net to fine-tune, the published net, its crop scale): one object unless `activation` "relu"
    replaces the PReLUs (then the published net is still what learning-without-forgetting keeps)."""
    if activation not in ACTIVATIONS:
        raise ModelError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    published, scale = pretrained(name, weights_dir)
    return (with_relu(published, PRETRAINED[name][0]) if activation == "relu" else published), published, scale


def train_liveness_set(pad_dir: Path, weights_dir: Path, out_root: Path, work: Path, epochs: int = 8,
                       bpcer: float = 0.05, max_images: int | None = None, set_name: str = "minifasnet",
                       precisions: tuple[str, ...] = ("fp16", "int8", "fp32"), command: str = "",
                       cfg: FinetuneConfig | None = None) -> dict:
    import keras

    from facegate.edge.registry import load_detector
    samples = load_pad_dev(pad_dir)
    if max_images:                                     # tiny runs (CI): every kind of sample, fewer of each
        rng = np.random.default_rng(0)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), min(max_images, len(samples)), replace=False))]
    train, val = subject_split(samples)
    boxes = face_boxes(samples, load_detector(), work / "pad_boxes.npz")
    images = load_images(samples)
    live, attacks = np.array([s.live for s in val]), [s.attack for s in val]
    models, histories, pretrained_scores = {}, {}, []
    cfg = replace(cfg or FinetuneConfig(), epochs=epochs)
    for name in NETS:
        model, published, scale = starting_nets(name, weights_dir, cfg.activation)
        pretrained_scores.append(fused_scores({name: (published, scale)}, images, val, boxes))   # before training
        result = finetune(model, scale, images, train, val, boxes, work / name, cfg, published=published)
        histories[name] = result["history"]
        models[name] = (keras.models.load_model(result["checkpoint"], compile=False), scale)
    plot_history(histories, work / "history.png")
    scores = fused_scores(models, images, val, boxes)
    threshold = card_threshold(threshold_at_bpcer(scores[live & ~np.isnan(scores)], bpcer))    # as the card has it
    metrics = pad_metrics(scores, live, attacks, threshold)
    # the pretrained nets, fused, under the same protocol (their own threshold at the same BPCER)
    pre_scores = np.mean(pretrained_scores, axis=0)
    pre = pad_metrics(pre_scores, live, attacks, threshold_at_bpcer(pre_scores[live & ~np.isnan(pre_scores)], bpcer))
    accuracy = {"dataset": "pad_dev (NUAA, MSU-MFSD, CelebA-Spoof sample)", "split": "subject-disjoint validation "
                f"({len(val)} images; CelebA-Spoof images have no subject ids and are split per image)",
                "target_bpcer": bpcer, "threshold_chosen_on": "the validation split (no separate test split)",
                "fine_tuned": metrics, "pretrained_same_protocol": pre, "train_images": len(train),
                "epochs": epochs, "command": command}
    reps = representative_crops(models, images, train, boxes)
    parity = export_set(models, out_root, set_name, threshold, accuracy, reps,
                        {n: fine_tuned_source(n, epochs, m) for n, (m, _) in models.items()},
                        licence=weights_dir / "LICENSE", precisions=precisions,
                        split=ThresholdSplit(images, val, boxes, bpcer))
    report = {"threshold": threshold, "fine_tuned": metrics, "pretrained": pre, "parity": parity,
              "history": histories, "accuracy": accuracy}       # accuracy: what `export --task liveness` needs
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def crossval_source(pad_dir: Path, weights_dir: Path, work: Path, threshold: float, source: str = "msu",
                    folds: int = 5, epochs: int = 8, command: str = "", max_images: int | None = None,
                    cfg: FinetuneConfig | None = None) -> dict:
    """Held-out numbers for one source's attacks (MSU: its phone and tablet replays): the source's
    subjects in `folds` groups; for each, both nets are fine-tuned without that group's subjects and
    score them; the pooled scores are judged at `threshold` (the shipped card's)."""
    from facegate.edge.registry import load_detector
    samples = load_pad_dev(pad_dir)
    if max_images:                                     # tiny runs (tests): the source whole, a sample of the rest
        others = [s for s in samples if s.source != source]
        keep = np.random.default_rng(0).choice(len(others), min(max_images, len(others)), replace=False)
        samples = [s for s in samples if s.source == source] + [others[i] for i in sorted(keep)]
    subjects = sorted({s.subject for s in samples if s.source == source})
    if len(subjects) < folds:
        raise ValueError(f"{source} has {len(subjects)} subjects, fewer than {folds} folds")
    boxes = face_boxes(samples, load_detector(), work / "pad_boxes.npz")
    images = load_images(samples)
    _, val = subject_split(samples)
    held_all, scores_all = [], []
    for k in range(folds):
        group = set(subjects[k::folds])
        held = [s for s in samples if s.subject in group]
        train = [s for s in samples if s.subject not in group and s not in val]
        fold_val = [s for s in val if s.subject not in group]
        models = finetune_pair(weights_dir, images, train, fold_val, boxes, work / f"fold{k}", epochs, cfg=cfg)
        held_all += held
        scores_all.append(fused_scores(models, images, held, boxes))
        log.info("fold %d/%d: %d held-out %s images", k + 1, folds, len(held), source)
    scores = np.concatenate(scores_all)
    metrics = pad_metrics(scores, np.array([s.live for s in held_all]), [s.attack for s in held_all], threshold)
    report = {"source": source, "folds": folds, "epochs": epochs, "threshold": threshold, "held_out": metrics,
              "command": command}
    (work / f"crossval-{source}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def finetune_pair(weights_dir: Path, images: dict, train: list, val: list, boxes: dict, work: Path,
                  epochs: int, progress: bool = False, cfg: FinetuneConfig | None = None) -> dict:
    """Both nets fine-tuned from the pretrained weights on `train` (best checkpoint on `val`):
    {name: (Keras model, crop scale)}."""
    import keras
    models = {}
    cfg = replace(cfg, epochs=epochs) if cfg else FinetuneConfig(epochs=epochs)
    for name in NETS:
        model, published, scale = starting_nets(name, weights_dir, cfg.activation)
        result = finetune(model, scale, images, train, val, boxes, work / name, cfg, progress=progress,
                          published=published)
        models[name] = (keras.models.load_model(result["checkpoint"], compile=False), scale)
    return models


def leave_one_source_out(samples: list, images: dict, boxes: dict, weights_dir: Path, work: Path,
                         baselines: list, epochs: int = 8, bpcer: float = 0.05,
                         cfg: FinetuneConfig | None = None, extra_train: list | None = None) -> list[dict]:
    """For each source: both nets fine-tuned on the other sources (subject-disjoint validation split of
    them for the checkpoint and the threshold at `bpcer`), then every scorer judged on the held-out
    source. Baselines are judged twice: at their own rule, and at a threshold chosen like ours (at
    `bpcer` on the training sources' validation split), so the comparison is not one of thresholds.
    `extra_train`: samples from outside `samples` added to every fold's training split only (never to
    its validation split or the held-out source; their images and boxes must be in `images`/`boxes`).
    Returns one entry per source: {"source", "scorers": [(PadScorer, scores on the held-out source)]}."""
    from facegate.convert.pad.scorers import keras_pair
    folds = []
    for source in sorted({s.source for s in samples}):
        held = [s for s in samples if s.source == source]
        train, val = subject_split([s for s in samples if s.source != source])
        train = train + list(extra_train or [])
        live_val = np.array([s.live for s in val])
        log.info("leave out %s: fine-tune on %d images (%d from outside the sources), test on %d", source,
                 len(train), len(extra_train or []), len(held))
        models = finetune_pair(weights_dir, images, train, val, boxes, work / f"without-{source}", epochs, cfg=cfg)
        chosen = f"BPCER {bpcer:.0%} on the other sources' validation split"
        scored = []
        for scorer in [keras_pair(models, 0.5, "fine-tuned (ours)", chosen), *baselines]:
            on_val = scorer.scores(images, val, boxes)
            threshold = threshold_at_bpcer(on_val[live_val & ~np.isnan(on_val)], bpcer)
            on_held = scorer.scores(images, held, boxes)
            scored.append((scorer.with_threshold(threshold, chosen), on_held))
            if scorer.threshold_source != chosen:                     # a baseline: its own rule too
                scored.append((scorer, on_held))
        folds.append({"source": source, "train_images": len(train), "scorers": scored})
    return folds
