"""The whole liveness set from the pretrained weights: face boxes on pad_dev, a subject-disjoint split,
fine-tuning of both nets, the fused threshold at a target BPCER on the validation split, APCER per
attack type there, and the export of every precision with its card (`facegate liveness train`)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from facegate.convert.pad.data import face_boxes, load_pad_dev, subject_split
from facegate.convert.pad.export import export_set, source_line
from facegate.convert.pad.finetune import FinetuneConfig, crops, finetune, load_images, plot_history
from facegate.convert.pad.metrics import pad_metrics, threshold_at_bpcer
from facegate.convert.pad.minifasnet import LIVE_CLASS, pretrained

log = logging.getLogger(__name__)
NETS = ("minifasnet-v2", "minifasnet-v1se")


def fused_scores(models: dict, images: dict, samples: list, boxes: dict) -> np.ndarray:
    """Mean live probability of the nets per sample (NaN where no face was found)."""
    out = np.full(len(samples), np.nan)
    have = [i for i, s in enumerate(samples) if boxes.get(s.key) is not None]
    if not have:
        return out
    per_net = []
    for model, scale in models.values():
        x, _ = crops(images, [samples[i] for i in have], boxes, scale)
        per_net.append(model.predict(x, verbose=0)[:, LIVE_CLASS])
    out[have] = np.mean(per_net, axis=0)
    return out


def train_liveness_set(pad_dir: Path, weights_dir: Path, out_root: Path, work: Path, epochs: int = 8,
                       bpcer: float = 0.05, max_images: int | None = None, set_name: str = "minifasnet",
                       precisions: tuple[str, ...] = ("fp16", "int8", "fp32"), command: str = "") -> dict:
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
    for name in NETS:
        model, scale = pretrained(name, weights_dir)
        pretrained_scores.append(fused_scores({name: (model, scale)}, images, val, boxes))   # before training
        result = finetune(model, scale, images, train, val, boxes, work / name, FinetuneConfig(epochs=epochs))
        histories[name] = result["history"]
        models[name] = (keras.models.load_model(result["checkpoint"], compile=False), scale)
    plot_history(histories, work / "history.png")
    scores = fused_scores(models, images, val, boxes)
    threshold = threshold_at_bpcer(scores[live & ~np.isnan(scores)], bpcer)
    metrics = pad_metrics(scores, live, attacks, threshold)
    # the pretrained nets, fused, under the same protocol (their own threshold at the same BPCER)
    pre_scores = np.mean(pretrained_scores, axis=0)
    pre = pad_metrics(pre_scores, live, attacks, threshold_at_bpcer(pre_scores[live & ~np.isnan(pre_scores)], bpcer))
    accuracy = {"dataset": "pad_dev (NUAA, MSU-MFSD, CelebA-Spoof sample)", "split": "subject-disjoint validation "
                f"({len(val)} images; CelebA-Spoof images have no subject ids and are split per image)",
                "target_bpcer": bpcer, "threshold_chosen_on": "the validation split (no separate test split)",
                "fine_tuned": metrics, "pretrained_same_protocol": pre, "train_images": len(train),
                "epochs": epochs, "command": command}
    reps = {name: crops(images, train, boxes, scale)[0][:200] for name, (_, scale) in models.items()}
    parity = export_set(models, out_root, set_name, threshold, accuracy, reps,
                        {n: source_line(n) + f"; fine-tuned on pad_dev, {epochs} epochs" for n in NETS},
                        licence=weights_dir / "LICENSE", precisions=precisions)
    report = {"threshold": threshold, "fine_tuned": metrics, "pretrained": pre, "parity": parity,
              "history": histories}
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def crossval_source(pad_dir: Path, weights_dir: Path, work: Path, threshold: float, source: str = "msu",
                    folds: int = 5, epochs: int = 8, command: str = "", max_images: int | None = None) -> dict:
    """Held-out numbers for one source's attacks (MSU: its phone and tablet replays): the source's
    subjects in `folds` groups; for each, both nets are fine-tuned without that group's subjects and
    score them; the pooled scores are judged at `threshold` (the shipped card's)."""
    import keras

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
        models = {}
        for name in NETS:
            model, scale = pretrained(name, weights_dir)
            result = finetune(model, scale, images, train, fold_val, boxes, work / f"fold{k}" / name,
                              FinetuneConfig(epochs=epochs), progress=False)
            models[name] = (keras.models.load_model(result["checkpoint"], compile=False), scale)
        held_all += held
        scores_all.append(fused_scores(models, images, held, boxes))
        log.info("fold %d/%d: %d held-out %s images", k + 1, folds, len(held), source)
    scores = np.concatenate(scores_all)
    metrics = pad_metrics(scores, np.array([s.live for s in held_all]), [s.attack for s in held_all], threshold)
    report = {"source": source, "folds": folds, "epochs": epochs, "threshold": threshold, "held_out": metrics,
              "command": command}
    (work / f"crossval-{source}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
