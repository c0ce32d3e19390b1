"""`facegate distill compress`: make a trained embedder student narrower and teach the slim copy to
behave like its source, block by block.

Why: the student's speed target needs fewer channels, not a different network. The MobileFaceNet
student's cost sits in its bottlenecks' inner (expansion) channels: 1x1 expand -> depthwise ->
1x1 project. Removing inner channels (`convert/prune.py`, data-aware, with the mean of what was
removed folded into the projection's bias) leaves every block's input and output shape unchanged.
So the source network can supervise the slim one at every block output, not just at the final
embedding: a dense target per face (thousands of values per block) that 6,000 faces can teach,
where embedding-only fine-tuning of the whole backbone lost accuracy (docs/benchmarks.md).

Loss per batch, on one augmented view shared by both networks (source in inference mode):
* each matched block output: mean squared error divided by the source's mean square there, so
  every block counts alike whatever its scale;
* the embedding: 1 - cosine to the source's embedding (weight `embedding_weight`).

One epoch = one pass over the training faces; after each, the held-out identities are embedded
(no augmentation) and compared with the source and with the FaceNet targets. The best epoch (by
held-out cosine to the source) is written as `student.keras` with its card; checkpoints allow
resuming in a later session.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facegate.convert.distill.augment import AugmentConfig, augment_batch
from facegate.convert.distill.embedder import NORMALISATION, embed_faces, label_ids, pair_accuracy, save_student_file
from facegate.convert.distill.runlog import EpochBook, append_csv_row, run_epoch
from facegate.convert.distill.targets import TargetSet
from facegate.edge.errors import ModelError
from facegate.edge.face.embed import normalise

log = logging.getLogger(__name__)


def parse_plan(items: list[str]) -> list[tuple[str, float]]:
    """'REGEX=RATIO' items -> [(regex, ratio)], checked so a typo fails before any work is done."""
    plan = []
    for item in items:
        pattern, sep, ratio = item.rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"--plan {item!r}: expected LAYER_REGEX=RATIO, e.g. 'invresblock_\\d+_conv$=0.5'")
        try:
            value = float(ratio)
            re.compile(pattern)
        except (ValueError, re.error) as exc:
            raise ValueError(f"--plan {item!r}: {exc}") from exc
        if not 0 < value < 1:
            raise ValueError(f"--plan {item!r}: the ratio must be between 0 and 1")
        plan.append((pattern, value))
    if not plan:
        raise ValueError("a compression plan needs at least one LAYER_REGEX=RATIO")
    return plan


def prune_by_plan(model, plan: list[tuple[str, float]], data: np.ndarray | None):
    """Apply each (regex, ratio) in turn with structured pruning (data-aware when `data` is given).
    Returns the slim model and {producer layer: (filters before, after)}."""
    from facegate.convert.prune import prune_channels

    widths: dict[str, tuple[int, int]] = {}
    for pattern, ratio in plan:
        model, report = prune_channels(model, ratio, pattern, data=data)
        widths.update(report.layers)
    return model, widths


def merge_widths(earlier: dict, now: dict) -> dict:
    """{layer: (width in the source, width now)} after pruning a model that was already pruned:
    the source width comes from the earlier run, the current one from this run."""
    merged = dict(earlier)
    for name, (before, after) in now.items():
        merged[name] = (earlier[name][0] if name in earlier else before, after)
    return merged


def refit_projections(source, slim, names: list[str], x: np.ndarray, max_rows: int = 200_000,
                      ridge: float = 1e-3, seed: int = 0) -> dict[str, float]:
    """Least-squares refit of each 1x1 convolution that reads pruned channels, in network order:
    its kept inputs, as the slim network (already refitted upstream) computes them, regressed onto the
    source's output of the same layer. Pruning alone leaves the projection weighting channels that
    no longer exist (the slim student's embedding starts at cosine ~0.06 to its source); the refit
    makes each block reproduce the source as well as its remaining channels can, before any training.
    Returns the relative residual of each fit."""
    import keras

    rng = np.random.default_rng(seed)
    residual = {}
    for name in names:
        layer = slim.get_layer(name)
        kernel, bias = layer.get_weights()
        if kernel.shape[:2] != (1, 1):
            continue
        inputs = keras.Model(slim.input, layer.input).predict(x, batch_size=32, verbose=0)
        wanted = keras.Model(source.input, source.get_layer(name).output).predict(x, batch_size=32, verbose=0)
        a = inputs.reshape(-1, inputs.shape[-1]).astype(np.float64)
        y = wanted.reshape(-1, wanted.shape[-1]).astype(np.float64)
        if len(a) > max_rows:
            pick = rng.choice(len(a), size=max_rows, replace=False)
            a, y = a[pick], y[pick]
        a1 = np.hstack([a, np.ones((len(a), 1))])
        gram = a1.T @ a1
        gram[np.diag_indices(len(gram) - 1)] += ridge * np.trace(gram[:-1, :-1]) / (len(gram) - 1)
        solution = np.linalg.solve(gram, a1.T @ y)
        layer.set_weights([solution[:-1].reshape(kernel.shape).astype(np.float32), solution[-1].astype(np.float32)])
        residual[name] = float(np.sum((a1 @ solution - y) ** 2) / max(np.sum((y - y.mean(0)) ** 2), 1e-12))
        log.info("refit %s: relative residual %.3f", name, residual[name])
    return residual


def matched_layers(source, slim) -> list[str]:
    """Layers whose output the slim model must reproduce: every residual sum and every convolution
    whose output shape pruning left unchanged and that reads a pruned tensor (a block's projection),
    plus the final embedding."""
    from keras import layers

    names = []
    src = {layer.name: layer for layer in source.layers}
    for layer in slim.layers:
        other = src.get(layer.name)
        if other is None or tuple(other.output.shape) != tuple(layer.output.shape):
            continue
        if isinstance(layer, layers.Add):
            names.append(layer.name)
        elif type(layer) is layers.Conv2D and tuple(other.input.shape) != tuple(layer.input.shape):
            names.append(layer.name)
    out = slim.layers[-1].name
    return [n for n in dict.fromkeys(names) if n != out]


def load_start(path: str, source, source_name: str) -> tuple:
    """The --start student (a pruned copy of `source`: same layers, same block interfaces) and the
    {layer: (source width, width)} its card records."""
    from facegate.edge.registry import get_embedder

    start = get_embedder(path)
    model = getattr(start.backend, "model", None)
    if model is None:
        raise ModelError(f"--start {path}: not a Keras student file")
    missing = {layer.name for layer in source.layers} ^ {layer.name for layer in model.layers}
    if missing or tuple(model.output.shape) != tuple(source.output.shape):
        raise ModelError(f"--start {path} is not a pruned copy of {source_name} (layers differ: "
                         f"{sorted(missing)[:5]}); start from a `facegate distill compress` result of that source")
    student = start.card.accuracy.get("student", {}) if start.card else {}
    return model, {k: tuple(v) for k, v in student.get("inner_widths", {}).items()}


@dataclass
class CompressConfig:
    source: str
    plan: list[tuple[str, float]]
    out: Path
    name: str = "facenet-student-slim"     # the card's name: exported files are NAME_<quant>.<ext>
    epochs: int = 8
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    embedding_weight: float = 4.0
    augment_strength: float = 1.0
    steps_per_epoch: int | None = None
    max_minutes: float | None = None
    prune_images: int = 256
    seed: int = 0
    progress: bool = True
    start: str | None = None    # an earlier compressed copy of `source` to prune further (progressive)

    def plan_json(self) -> list[list]:
        return [list(p) for p in self.plan]

    def to_json(self) -> dict:
        return {**asdict(self), "out": str(self.out), "plan": self.plan_json()}


class Compressor:
    """Owns the source and slim models, the optimiser, checkpoints and the log of one run."""

    def __init__(self, cfg: CompressConfig, train: TargetSet, val: TargetSet | None) -> None:
        import keras
        import tensorflow as tf

        from facegate.edge.registry import get_embedder

        self.cfg, self.train_set, self.val_set, self.tf = cfg, train, val, tf
        source = get_embedder(cfg.source)
        if source.spec.size != 112 or source.spec.normalisation != NORMALISATION:
            raise ModelError(f"{cfg.source}: compress works on the 112x112 student ({NORMALISATION}), not "
                             f"{source.spec.size}x{source.spec.size} {source.spec.normalisation}")
        self.source_card = source.card
        self.source = source.backend.model
        self.source.trainable = False
        cfg.out.mkdir(parents=True, exist_ok=True)
        pruned_path = cfg.out / "pruned.keras"   # the architecture (and starting weights) of this run
        fresh = not pruned_path.exists()
        if fresh:
            rng = np.random.default_rng(cfg.seed)
            pick = rng.choice(len(train), size=min(cfg.prune_images, len(train)), replace=False)
            x = normalise(train.centre_crops()[np.sort(pick)], NORMALISATION)
            start, start_widths = (load_start(cfg.start, self.source, cfg.source) if cfg.start
                                   else (self.source, {}))
            self.slim, widths = prune_by_plan(start, cfg.plan, x)
            self.widths = merge_widths(start_widths, widths)
        else:
            recorded = cfg.out / "config.json"
            earlier = json.loads(recorded.read_text()) if recorded.exists() else {}
            plan = earlier.get("plan")
            if plan is not None and plan != cfg.plan_json():
                raise ModelError(f"{cfg.out} holds a run pruned with --plan {plan}, not {cfg.plan_json()}: "
                                 "use another --out for a different plan")
            if recorded.exists() and earlier.get("start") != cfg.start:
                raise ModelError(f"{cfg.out} holds a run started from {earlier.get('start') or cfg.source}, not "
                                 f"{cfg.start or cfg.source}: use another --out")
            self.slim = keras.saving.load_model(pruned_path, compile=False)
            self.widths = json.loads((cfg.out / "widths.json").read_text())
        self.matched = matched_layers(self.source, self.slim)
        if not self.matched:
            raise ModelError("pruning left no block output to match: is the plan pruning block interfaces?")
        if fresh:
            # refit the projections this plan changed; a --start model's trained ones stay as they are
            projections = [n for n in self.matched if type(self.slim.get_layer(n)) is keras.layers.Conv2D
                           and tuple(start.get_layer(n).input.shape) != tuple(self.slim.get_layer(n).input.shape)]
            refit_projections(self.source, self.slim, projections, x, seed=cfg.seed)
            self.slim.save(pruned_path)
            (cfg.out / "widths.json").write_text(json.dumps(self.widths, indent=1))
        self.slim.trainable = True    # the frozen source's config says trainable=False for every layer
        self._source_val: np.ndarray | None = None
        log.info("%d -> %d parameters; matching %d block outputs and the embedding",
                 self.source.count_params(), self.slim.count_params(), len(self.matched))
        self.source_probe = keras.Model(self.source.input, [self.source.get_layer(n).output for n in self.matched]
                                        + [self.source.output])
        self.slim_probe = keras.Model(self.slim.input, [self.slim.get_layer(n).output for n in self.matched]
                                      + [self.slim.output])
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, len(train) // cfg.batch)
        schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, self.steps_per_epoch * cfg.epochs), alpha=0.05)
        self.optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.ckpt = tf.train.Checkpoint(model=self.slim, optimizer=self.optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, cfg.out / "checkpoints", max_to_keep=2)
        self._step = self._make_step()

    def _make_step(self):
        tf = self.tf
        weight = float(self.cfg.embedding_weight)
        variables = self.slim.trainable_variables

        @tf.function
        def step(x):
            wanted = self.source_probe(x, training=False)
            with tf.GradientTape() as tape:
                got = self.slim_probe(x, training=True)
                blocks = tf.add_n([tf.reduce_mean(tf.square(g - w)) / (tf.reduce_mean(tf.square(w)) + 1e-6)
                                   for g, w in zip(got[:-1], wanted[:-1])]) / len(wanted[:-1])
                cosine = tf.reduce_mean(1.0 - tf.reduce_sum(tf.math.l2_normalize(got[-1], 1)
                                                            * tf.math.l2_normalize(wanted[-1], 1), 1))
                total = blocks + weight * cosine
            self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
            return {"total": total, "blocks": blocks, "embedding": cosine}
        return step

    def batches(self, epoch: int):
        """Augmented, normalised views of the training faces for one epoch (a generator: the
        augmentation runs in OpenCV between steps)."""
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        order = rng.permutation(len(self.train_set))
        while len(order) < cfg.batch * self.steps_per_epoch:
            order = np.concatenate([order, rng.permutation(len(self.train_set))])
        aug = AugmentConfig(strength=cfg.augment_strength)
        for s in range(self.steps_per_epoch):
            idx = order[s * cfg.batch:(s + 1) * cfg.batch]
            yield normalise(augment_batch(self.train_set.canvases[idx], rng, aug), NORMALISATION)

    def validate(self) -> dict:
        if self.val_set is None or not len(self.val_set):
            return {}
        crops = self.val_set.centre_crops()
        if self._source_val is None:     # the source never changes: embed the held-out faces once
            self._source_val = embed_faces(self.source, crops)
        emb = embed_faces(self.slim, crops)
        to_source = np.sum(emb * self._source_val, axis=1)
        to_teacher = np.sum(emb * self.val_set.targets, axis=1)
        ids = label_ids(self.val_set.labels)
        out = {"val_source_cosine_mean": round(float(to_source.mean()), 4),
               "val_source_cosine_p05": round(float(np.percentile(to_source, 5)), 4),
               "val_cosine_mean": round(float(to_teacher.mean()), 4)}
        out.update({f"val_{k}": v for k, v in pair_accuracy(emb, ids).items()})
        source = pair_accuracy(self._source_val, ids)
        if source:
            out["val_source_pair_accuracy"] = source["pair_accuracy"]
        return out

    def save(self, path: Path, metrics: dict) -> None:
        student = dict(self.source_card.accuracy.get("student", {})) if self.source_card else {}
        student.update({"architecture": f"{student.get('architecture', 'student')}-pruned", "compressed_from": self.cfg.source,
                        **({"started_from": self.cfg.start} if self.cfg.start else {}),
                        "plan": self.cfg.plan_json(), "inner_widths": self.widths,
                        "embedding_dim": int(self.slim.output.shape[-1])})
        teacher = (self.source_card.teacher if self.source_card else "") or self.train_set.teacher
        save_student_file(self.slim, path, metrics=metrics, config=self.cfg.to_json(), student=student,
                          teacher=teacher, source="facegate distill compress", name=self.cfg.name)

    def fit(self, resume: bool = True) -> dict:
        cfg = self.cfg
        (cfg.out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        if resume and self.manager.latest_checkpoint:
            self.ckpt.restore(self.manager.latest_checkpoint)
            log.info("resumed from %s (epoch %d)", self.manager.latest_checkpoint, int(self.epoch))
        book = EpochBook(cfg.out, "val_source_cosine_mean", self.save, resume, cfg.max_minutes)
        if int(self.epoch) == 0 and not book.log_path.exists():
            row = {"epoch": 0, **self.validate()}     # pruned, before any training
            append_csv_row(book.log_path, row)
            log.info("epoch 0 (pruned, untrained): %s", row)
        while int(self.epoch) < cfg.epochs:
            epoch = int(self.epoch)
            row = {"epoch": epoch + 1, **run_epoch(self._step, self.batches(epoch), self.steps_per_epoch,
                                                   f"compress {epoch + 1}/{cfg.epochs}", cfg.progress)}
            row.update(self.validate())
            self.epoch.assign(epoch + 1)
            if book.close_epoch(row, self.manager, more_to_do=epoch + 1 < cfg.epochs):
                break
        return {"best": book.best, "last": book.last, "epochs_done": int(self.epoch),
                "finished": int(self.epoch) >= cfg.epochs, "params": int(self.slim.count_params()),
                "source_params": int(self.source.count_params())}


def compress_embedder(cfg: CompressConfig, data_folders: list[Path] | None = None, teacher: str | None = None,
                      max_images: int | None = None, hold_out_every: int = 8, resume: bool = True,
                      targets_cache: Path | None = None) -> dict:
    """Same photos, teacher targets and held-out identities as `facegate distill embedder`."""
    from facegate.convert.distill.pipeline import train_on_targets

    return train_on_targets(Compressor, cfg, data_folders, teacher, max_images, hold_out_every, resume, targets_cache)
