"""`facegate distill embedder`: train the MobileFaceNet-style student to reproduce FaceNet.

One epoch = one pass over the training faces, each augmented afresh. Every epoch ends with a
validation on held-out identities (no augmentation): mean cosine to the teacher and the verification
accuracy of same/different-person pairs among them; the best epoch is written as `student.keras`
with its card. Checkpoints (model + optimiser + epoch) are saved every epoch and after `--max-minutes`,
so a long run can continue in a later session (`--resume` is the default when a checkpoint exists).
On a GPU the same code runs under `tf.distribute.MirroredStrategy` with mixed precision.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facegate.convert.distill.augment import AugmentConfig, augment_batch
from facegate.convert.distill.runlog import EpochBook, append_csv_row, run_epoch
from facegate.convert.distill.targets import TargetSet
from facegate.edge.face.embed import normalise

log = logging.getLogger(__name__)

NORMALISATION = "mean127.5_div128"
DEFAULT_WEIGHTS = {"cosine": 1.0, "l2": 0.5, "relational": 1.0, "triplet": 0.0, "contrastive": 0.0, "center": 0.0,
                   "arcface": 0.0}


@dataclass
class DistillConfig:
    out: Path
    epochs: int = 30
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    width: float = 1.0
    depth: float = 1.0
    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    triplet_margin: float = 0.2
    augment_strength: float = 1.0
    seed: int = 0
    max_minutes: float | None = None   # stop (after a checkpoint) when this much time has passed
    steps_per_epoch: int | None = None  # default: one pass over the training faces
    init: Path | None = None           # start from these student weights (.keras) instead of random ones
    #: "scratch" (MobileFaceNet-style, random init) or "peer" (the pretrained MobileFaceNet with a new
    #: 128-D head fitted in closed form before any step; facegate.convert.students.peer)
    student: str = "scratch"
    head_views: int = 4                # peer: views per face for the closed-form head fit
    head_relational: float = 10.0      # peer: relational refinement weight (0: ridge head only)
    head_peer_mix: float = 0.5         # peer: share of the peer's similarities in the relational target
    head_steps: int = 3000             # peer: refinement steps on the cached features
    #: members whose mean cosine the relational terms match (head refinement and training), e.g.
    #: ("teacher", "peer", "dlib"); empty: the teacher's similarities (training) and the teacher/peer
    #: mix of `head_peer_mix` (head). facegate.convert.distill.ensemble
    ensemble: tuple[str, ...] = ()
    #: keep every BatchNorm as the starting network has it (inference statistics, no gamma/beta steps):
    #: fine-tuning on a few thousand faces otherwise re-estimates its statistics on small augmented
    #: batches. The imported peer has none (folded into its convolutions); scratch students have them
    freeze_bn: bool = False
    progress: bool = True

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        d["init"] = str(self.init) if self.init else None
        return d


def label_ids(labels: np.ndarray) -> np.ndarray:
    """Integer identity per face; unlabelled faces get unique negative ids (never positives)."""
    ids = np.empty(len(labels), np.int32)
    table: dict[str, int] = {}
    for i, lab in enumerate(labels):
        ids[i] = table.setdefault(lab, len(table)) if lab else -(i + 1)
    return ids


def parse_loss_weights(items: list[str] | None, defaults: dict) -> dict:
    """NAME=WEIGHT options over the defaults; unknown names are refused with the known ones."""
    weights = dict(defaults)
    for item in items or []:
        name, _, value = item.partition("=")
        if name not in weights or not value:
            raise ValueError(f"--loss takes NAME=WEIGHT with NAME in {sorted(weights)}, not {item!r}")
        weights[name] = float(value)
    return weights


def identity_groups(ids: np.ndarray) -> list[list[int]]:
    """Face indices of each labelled identity that has at least two faces (where positives exist)."""
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(ids):
        if k >= 0:
            groups.setdefault(int(k), []).append(i)
    return [g for g in groups.values() if len(g) >= 2]


def draw_identity_faces(people: list[list[int]], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct identities, up to 4 faces of each: same-person pairs inside a batch."""
    chosen = rng.choice(len(people), size=count, replace=False)
    return np.concatenate([rng.choice(people[c], size=min(4, len(people[c])), replace=False) for c in chosen])


def batch_indices(ids: np.ndarray, batch: int, rng: np.random.Generator, identity_batches: bool) -> list[np.ndarray]:
    """One epoch of batches. With `identity_batches` (an identity loss on) half of each batch is drawn as
    identities x 4 images so positives exist; the rest is uniform."""
    order = rng.permutation(len(ids))
    batches = [order[i:i + batch] for i in range(0, len(order) - batch + 1, batch)]
    if not identity_batches:
        return batches
    people = identity_groups(ids)
    if not people:
        return batches
    out = []
    for b in batches:
        paired = draw_identity_faces(people, max(1, batch // 8), rng)
        out.append(np.concatenate([paired, b[:batch - len(paired)]]))
    return out


def labelled_pairs(emb: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of faces once: (cosine, same person). Unlabelled faces (negative ids) are never
    the same person as anyone."""
    iu = np.triu_indices(len(ids), 1)
    same = (ids[:, None] == ids[None, :])[iu] & (ids[iu[0]] >= 0)
    return (emb @ emb.T)[iu], same


def pair_accuracy(emb: np.ndarray, ids: np.ndarray) -> dict:
    """Same/different-person verification among held-out faces: best-threshold accuracy on a
    balanced set of pairs and the mean genuine / impostor cosine."""
    scores, same = labelled_pairs(emb, ids)
    gen, imp = scores[same], scores[~same]
    if not len(gen) or not len(imp):
        return {}
    rng = np.random.default_rng(0)
    imp_s = rng.choice(imp, size=min(len(imp), len(gen)), replace=False)
    allv = np.concatenate([gen, imp_s])
    lab = np.concatenate([np.ones(len(gen), bool), np.zeros(len(imp_s), bool)])
    best = max(float(np.mean((allv >= t) == lab)) for t in np.unique(np.round(allv, 3)))
    return {"pair_accuracy": round(best, 4), "genuine_mean": round(float(gen.mean()), 4),
            "impostor_mean": round(float(imp.mean()), 4), "genuine_pairs": int(len(gen))}


def heldout_metrics(emb: np.ndarray, val: TargetSet) -> dict:
    """Held-out identities: cosine of unit embeddings `emb` to the teacher's targets (mean, 5th
    percentile) and the same/different-person numbers of `pair_accuracy`, keys prefixed `val_`."""
    cos = np.sum(emb * val.targets, axis=1)
    out = {"val_cosine_mean": round(float(cos.mean()), 4), "val_cosine_p05": round(float(np.percentile(cos, 5)), 4)}
    out.update({f"val_{k}": v for k, v in pair_accuracy(emb, label_ids(val.labels)).items()})
    return out


def embed_faces(model, crops: np.ndarray, batch: int = 128) -> np.ndarray:
    """Unit-length embeddings of uint8 112x112 student crops by a Keras student, in inference mode."""
    outs = [np.asarray(model(normalise(crops[i:i + batch], NORMALISATION), training=False), np.float32)
            for i in range(0, len(crops), batch)]
    e = np.concatenate(outs)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-10)


class Trainer:
    """Owns the model, optimiser, data and checkpoints of one distillation run."""

    def __init__(self, cfg: DistillConfig, train: TargetSet, val: TargetSet | None) -> None:
        import keras
        import tensorflow as tf

        self.cfg, self.train_set, self.val_set = cfg, train, val
        self.tf = tf
        gpus = tf.config.list_physical_devices("GPU")
        self.strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
        if gpus:
            keras.mixed_precision.set_global_policy("mixed_float16")
        self.ids = label_ids(train.labels)
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, len(train) // cfg.batch)
        total = self.steps_per_epoch * cfg.epochs
        warm = int(self.steps_per_epoch * cfg.warmup_epochs)
        self.head_fit: dict | None = None
        self.members = self._ensemble_members(train)
        self.relational_targets = train.targets
        if self.members:
            from facegate.convert.distill.ensemble import ensemble_vectors
            self.relational_targets = ensemble_vectors(list(self.members.values()))
        with self.strategy.scope():
            self.student_config = self._student_config(int(train.targets.shape[1]))
            self.model = self.student_config.build()
            if cfg.init:
                self._load_init(Path(cfg.init))
                from facegate.convert.distill.head import unit_length_start
                unit_length_start(self.model, train, NORMALISATION)     # the L2 term measures direction
            elif cfg.student == "peer" and not (cfg.out / "checkpoints").is_dir():
                self.head_fit = self._fit_head(train)
            if cfg.freeze_bn:
                frozen = [layer for layer in self.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
                for layer in frozen:
                    layer.trainable = False
                log.info("%d BatchNorm layers frozen", len(frozen))
            schedule = keras.optimizers.schedules.CosineDecay(cfg.lr * 0.1 if warm else cfg.lr, max(1, total - warm),
                                                              alpha=0.02, warmup_target=cfg.lr if warm else None,
                                                              warmup_steps=warm)
            opt = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
            self.optimizer = keras.optimizers.LossScaleOptimizer(opt) if gpus else opt
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
            from facegate.convert.distill.losses import IdentityTerms
            self.identity = IdentityTerms(int(self.ids.max()) + 1 if (self.ids >= 0).any() else 1,
                                          int(train.targets.shape[1]), seed=cfg.seed)
            self.ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch,
                                            identity=self.identity)
        self.manager = tf.train.CheckpointManager(self.ckpt, cfg.out / "checkpoints", max_to_keep=2)
        self._step = self._make_step()

    def _ensemble_members(self, train: TargetSet) -> dict[str, np.ndarray]:
        """Each ensemble member's (cached) embeddings of the training faces; {} without an ensemble."""
        if not self.cfg.ensemble:
            return {}
        from facegate.convert.distill.ensemble import ensemble_for, parse_ensemble
        from facegate.edge.downloads import cache_dir
        members = ensemble_for(train, parse_ensemble(self.cfg.ensemble), cache_dir() / "distill", self.cfg.progress)
        log.info("relational targets: mean cosine of %s", " + ".join(members))
        return members

    def _fit_head(self, train: TargetSet) -> dict:
        """The closed-form head of a peer student, refined towards the teacher/peer mix or the ensemble."""
        from facegate.convert.distill.head import Refinement, fit_head
        cfg = self.cfg
        reference, face_reference, share = None, None, cfg.head_peer_mix
        if self.members:
            from facegate.convert.distill.ensemble import relational_reference
            face_reference, share = relational_reference(self.members)
        elif cfg.head_relational > 0:
            reference = self._peer_reference()
        fit = fit_head(self.model, train, NORMALISATION, views=cfg.head_views, seed=cfg.seed, progress=cfg.progress,
                       reference=reference, face_reference=face_reference,
                       refinement=Refinement(weight=cfg.head_relational, peer_mix=share, steps=cfg.head_steps))
        out = fit.to_dict()
        if self.members:
            out["ensemble"] = list(self.members)
        return out

    def _peer_reference(self):
        """The peer's own embedding of each view, from the features the pretrained student's head reads."""
        feature_map = self.student_config.reference()
        return lambda _crops, features: feature_map(features)

    def _student_config(self, embedding_dim: int):
        from facegate.convert.students.mobilefacenet import StudentConfig
        from facegate.convert.students.peer import PeerStudentConfig
        if self.cfg.student == "peer":
            return PeerStudentConfig(embedding_dim=embedding_dim)
        if self.cfg.student != "scratch":
            raise ValueError(f"unknown student {self.cfg.student!r}: 'scratch' or 'peer'")
        return StudentConfig(width=self.cfg.width, depth=self.cfg.depth, embedding_dim=embedding_dim)

    def _load_init(self, path: Path) -> None:
        """Warm start (e.g. from the committed student): same architecture required, else say so."""
        import keras
        if not path.exists():
            raise FileNotFoundError(f"--init {path}: no such student file")
        source = keras.saving.load_model(path, compile=False)
        ours = [tuple(w.shape) for w in self.model.weights]
        theirs = [tuple(w.shape) for w in source.weights]
        if ours != theirs:
            raise ValueError(f"--init {path} is a different student (width/depth/embedding size) than "
                             f"{self.student_config}; pass the matching --student/--width/--depth")
        self.model.set_weights(source.get_weights())
        log.info("student initialised from %s", path)

    # -- data -------------------------------------------------------------------------------------
    def dataset(self, epoch: int):
        """tf.data pipeline over one epoch: augmentation in a generator (OpenCV releases the GIL),
        prefetched while the previous batch trains."""
        tf = self.tf
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        from facegate.convert.distill.losses import IDENTITY_LOSSES
        identity_batches = any(cfg.weights.get(name) for name in IDENTITY_LOSSES)
        batches = batch_indices(self.ids, cfg.batch, rng, identity_batches)[: self.steps_per_epoch]
        while len(batches) < self.steps_per_epoch:   # tiny sets: repeat
            batches += batch_indices(self.ids, min(cfg.batch, len(self.ids)), rng, False)
        batches = batches[: self.steps_per_epoch]
        aug = AugmentConfig(strength=cfg.augment_strength)
        data = self.train_set

        def gen():
            for b in batches:
                x = normalise(augment_batch(data.canvases[b], rng, aug), NORMALISATION)
                yield x, data.targets[b], self.relational_targets[b], self.ids[b]

        d, r = self.train_set.targets.shape[1], self.relational_targets.shape[1]
        ds = tf.data.Dataset.from_generator(gen, output_signature=(
            tf.TensorSpec((None, 112, 112, 3), tf.float32), tf.TensorSpec((None, d), tf.float32),
            tf.TensorSpec((None, r), tf.float32), tf.TensorSpec((None,), tf.int32)))
        return self.strategy.experimental_distribute_dataset(ds.prefetch(2))

    # -- one optimisation step ----------------------------------------------------------------------
    def _make_step(self):
        tf = self.tf
        from facegate.convert.distill.losses import distill_losses
        weights = {k: float(v) for k, v in self.cfg.weights.items()}
        # ArcFace's identity weights train with the student; nothing else of IdentityTerms is trained
        variables = list(self.model.trainable_variables)
        if weights.get("arcface"):
            variables.append(self.identity.arc_weights)

        def replica_step(x, t, r, y):
            with tf.GradientTape() as tape:
                raw = tf.cast(self.model(x, training=True), tf.float32)
                parts = distill_losses(raw, t, y, weights, self.cfg.triplet_margin, identity=self.identity,
                                       relational_target=r)
                loss = parts["total"] / self.strategy.num_replicas_in_sync
                scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
            grads = tape.gradient(scaled, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            return parts

        @tf.function
        def step(x, t, r, y):
            parts = self.strategy.run(replica_step, args=(x, t, r, y))
            return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in parts.items()}
        return step

    def train_step(self, x, t, r, y) -> dict[str, float]:
        return {k: float(v) for k, v in self._step(x, t, r, y).items()}

    # -- validation ---------------------------------------------------------------------------------
    def embed(self, crops: np.ndarray, batch: int = 128) -> np.ndarray:
        return embed_faces(self.model, crops, batch)

    def recalibrate_bn(self, batches: int = 24, momentum: float = 0.8) -> None:
        """Re-estimate every BatchNorm's moving mean/variance from clean training crops.

        Training normalises with batch statistics; inference uses the moving averages, which lag
        far behind early in a run (momentum 0.99) — enough to collapse every output onto one vector.
        A few forward passes with a low momentum make inference match what was trained. Weights
        are untouched."""
        import keras
        bns = [layer for layer in self.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        saved = [b.momentum for b in bns]
        rng = np.random.default_rng(12345)
        crops = self.train_set.centre_crops()
        try:
            for b in bns:
                b.momentum = momentum
            for _ in range(batches):
                idx = rng.choice(len(crops), size=min(self.cfg.batch, len(crops)), replace=False)
                self.model(normalise(crops[idx], NORMALISATION), training=True)
        finally:
            for b, m in zip(bns, saved):
                b.momentum = m

    def validate(self) -> dict:
        if self.val_set is None or not len(self.val_set):
            return {}
        self.recalibrate_bn()
        out = heldout_metrics(self.embed(self.val_set.centre_crops()), self.val_set)
        teacher = pair_accuracy(self.val_set.targets, label_ids(self.val_set.labels))
        if teacher:
            out["val_teacher_pair_accuracy"] = teacher["pair_accuracy"]
        return out

    # -- the loop -----------------------------------------------------------------------------------
    def finalize(self) -> dict:
        """Restore the latest checkpoint, recalibrate, validate and write `student.keras` from it
        (after an interrupted run, or to re-save a checkpoint with the current code)."""
        if not self.manager.latest_checkpoint:
            raise FileNotFoundError(f"no checkpoint under {self.cfg.out / 'checkpoints'}")
        self.ckpt.restore(self.manager.latest_checkpoint).expect_partial()
        row = {"epoch": int(self.epoch), "finalized_from": Path(self.manager.latest_checkpoint).name, **self.validate()}
        self.save_student(self.cfg.out / "student.keras", row)
        return row

    def fit(self, resume: bool = True) -> dict:
        cfg = self.cfg
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        if resume and self.manager.latest_checkpoint:
            self.ckpt.restore(self.manager.latest_checkpoint)
            log.info("resumed from %s (epoch %d)", self.manager.latest_checkpoint, int(self.epoch))
        # best epoch: held-out cosine to the teacher, or the training loss when nothing is held out
        book = EpochBook(cfg.out, "val_cosine_mean", self.save_student, resume, cfg.max_minutes)
        if self.head_fit is not None and int(self.epoch) == 0:
            # the closed-form head is a student already: measure it, keep it unless training beats it
            row = {"epoch": 0, **{f"head_{k}": v for k, v in self.head_fit.items()}, **self.validate()}
            append_csv_row(book.log_path, row)
            log.info("epoch 0 (closed-form head): %s", row)
            book.keep(row, row.get("val_cosine_mean", -math.inf))
            book.last = row
        while int(self.epoch) < cfg.epochs:
            epoch = int(self.epoch)
            trained = run_epoch(lambda batch: self.train_step(*batch), self.dataset(epoch), self.steps_per_epoch,
                                f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
            row = {"epoch": epoch + 1, **trained, "lr": float(self.optimizer.learning_rate), **self.validate()}
            self.epoch.assign(epoch + 1)
            if book.close_epoch(row, self.manager, more_to_do=epoch + 1 < cfg.epochs):
                break
        return {"best": book.best, "last": book.last, "epochs_done": int(self.epoch),
                "finished": int(self.epoch) >= cfg.epochs}

    def save_student(self, path: Path, metrics: dict) -> None:
        """The student as a float32 .keras file with its card (teacher's thresholds until calibrated)."""
        model = self.model
        if model.dtype_policy.name != "float32":   # mixed precision: save a float32 copy
            import keras
            keras.mixed_precision.set_global_policy("float32")
            model = self.student_config.build()
            model.set_weights(self.model.get_weights())
        save_student_file(model, path, metrics=metrics, config=self.cfg.to_json(),
                          student=self.student_config.to_dict(), teacher=self.train_set.teacher,
                          source="facegate distill embedder")


def save_student_file(model, path: Path, metrics: dict, config: dict, student: dict, teacher: str, source: str,
                      name: str = "facenet-student") -> None:
    """Write a float32 Keras student and its card: the training run's numbers, the teacher it mimics,
    and the teacher's thresholds until `facegate calibrate thresholds` replaces them."""
    from facegate.convert.keras_models import facenet_teacher_card
    from facegate.edge.cards import InputSpec, ModelCard, write_card

    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    teacher_card = facenet_teacher_card()
    card = ModelCard(
        name=name, task="embedding", file=path.name, sha256="",
        input=InputSpec(112, normalisation=NORMALISATION, alignment="similarity112"),
        outputs=[{"name": "embedding", "dim": int(student["embedding_dim"]), "l2_normalise": True}],
        format="keras", metric="cosine", thresholds=dict(teacher_card.thresholds),
        accuracy={"distillation": metrics, "config": config, "student": student, "params": int(model.count_params())},
        teacher=f"facenet-teacher ({teacher})", source=source,
        notes="Embeddings live in the teacher's space (trained to reproduce its flip-averaged embeddings), "
              "so galleries enrolled with the teacher stay usable. Thresholds are the teacher's until "
              "`facegate calibrate thresholds` is run on this file.")
    write_card(card, path)
