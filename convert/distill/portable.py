"""Distil the embedder student on a machine without TensorFlow (a lent GPU box with JAX or PyTorch).

`facegate distill embedder` is TensorFlow code (tf.data, tf.distribute). GPU machines often carry
PyTorch/JAX but no TensorFlow, and the TensorFlow wheel is too large to ship to them. Keras 3 runs
the same student code (`convert/students/mobilefacenet.py`) on any backend, so this module holds a
backend-neutral copy of the training loop:

1. here, with TensorFlow: `facegate distill pack` writes the cached teacher targets as one small
   file (canvases WebP-encoded, ~4 kB each, plus targets and labels);
2. there: `KERAS_BACKEND=jax python -m facegate.convert.distill.portable train PACK --out DIR`
   (needs only keras, numpy, opencv; augmentation runs in forked CPU workers; bf16 on a GPU);
3. here: `facegate distill import DIR` turns the weights into `student.keras` with its card, ready
   for `facegate export`.

Losses are the same cosine + L2 + relational terms as the TensorFlow trainer, written with
`keras.ops`; validation is the same (held-out identities, cosine to the teacher, pair accuracy).
A pack may also carry what `distill embedder --init ... --ensemble ...` uses: relational targets from
a teacher ensemble (`distill pack --ensemble teacher,peer,dlib`, computed here where dlib and the
peer run) and the starting student itself (`distill pack --init student.keras`, e.g. the pretrained
peer student, whose layers are all standard Keras layers and so load on any backend).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.convert.distill.augment import AugmentConfig, augment_batch
from facegate.convert.distill.embedder import (
    DEFAULT_WEIGHTS,
    NORMALISATION,
    draw_identity_faces,
    identity_groups,
    label_ids,
    pair_accuracy,
    parse_loss_weights,
)
from facegate.convert.distill.pipeline import held_out_mask
from facegate.convert.distill.runlog import append_csv_row, plot_log
from facegate.convert.distill.targets import STUDENT_SIZE, TargetSet

log = logging.getLogger(__name__)

PACK_FORMAT = "facegate-distill-pack/1"
WEIGHTS_FILE = "student.weights.h5"
RUN_FILE = "student.json"
INIT_FILE = "init.keras"            # the packed starting student, written beside the run's weights
PORTABLE_LOSSES = ("cosine", "l2", "relational")


# -- the pack: teacher targets in a file small enough to carry --------------------------------------
@dataclass(frozen=True)
class PackExtras:
    """What a pack may carry beside the faces and teacher targets."""

    relational: np.ndarray | None = None     # (N, R) targets of the relational term (an ensemble's vectors)
    init_model: bytes | None = None          # a .keras student to start from
    student: dict | None = None              # that student's config (its card's `student` entry)


def write_pack(data: TargetSet, path: Path, quality: int = 90, extras: PackExtras | None = None) -> dict:
    """Write `data` as one .npz with each canvas WebP-encoded (lossy at `quality`, ~7x smaller than
    raw pixels; the student is trained with JPEG artefacts anyway), and any `extras`."""
    if not len(data):
        raise ValueError("no faces to pack")
    extras = extras or PackExtras()
    more: dict[str, np.ndarray] = {}
    if extras.relational is not None:
        if len(extras.relational) != len(data):
            raise ValueError(f"{len(extras.relational)} relational targets for {len(data)} faces")
        more["relational"] = np.asarray(extras.relational, np.float16)      # dot products to ~1e-3
    if extras.init_model is not None:
        if extras.student is None:
            raise ValueError("a packed starting student needs its config (the card's student entry)")
        more["init_model"] = np.frombuffer(extras.init_model, np.uint8)
        more["student"] = np.array(json.dumps(extras.student))
    blobs = []
    for canvas in data.canvases:
        ok, buf = cv2.imencode(".webp", np.ascontiguousarray(canvas[:, :, ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode WebP; install opencv-python-headless >= 4.5")
        blobs.append(buf.ravel())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez(tmp, format=np.array(PACK_FORMAT), keys=data.keys.astype(str), labels=data.labels.astype(str),
             targets=data.targets.astype(np.float32), teacher=np.array(data.teacher),
             canvas_shape=np.array(data.canvases.shape[1:], np.int64), blob=np.concatenate(blobs), offsets=offsets,
             **more)
    os.replace(tmp, path)
    return {"faces": len(data), "bytes": path.stat().st_size, "quality": quality,
            "relational_dim": None if extras.relational is None else int(extras.relational.shape[1]),
            "init_model": extras.init_model is not None}


def read_pack(path: Path) -> TargetSet:
    """The TargetSet a pack holds (canvases decoded back to uint8 RGB)."""
    if not path.exists():
        raise FileNotFoundError(f"distillation pack {path} not found (make one with `facegate distill pack`)")
    with np.load(path) as z:
        if str(z["format"]) != PACK_FORMAT:
            raise ValueError(f"{path} is not a {PACK_FORMAT} file (format {z['format']})")
        blob, offsets, shape = z["blob"], z["offsets"], tuple(int(v) for v in z["canvas_shape"])
        canvases = np.empty((len(offsets) - 1, *shape), np.uint8)
        for i in range(len(canvases)):
            img = cv2.imdecode(blob[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
            if img is None or img.shape != shape:
                raise ValueError(f"{path}: face {i} does not decode to {shape}")
            canvases[i] = img[:, :, ::-1]
        return TargetSet(z["keys"].astype(str), z["labels"].astype(str), canvases, z["targets"].astype(np.float32),
                         str(z["teacher"]))


def read_pack_extras(path: Path) -> PackExtras:
    """The relational targets and starting student a pack carries (None where it has none)."""
    with np.load(path) as z:
        return PackExtras(relational=z["relational"].astype(np.float32) if "relational" in z else None,
                          init_model=z["init_model"].tobytes() if "init_model" in z else None,
                          student=json.loads(str(z["student"])) if "student" in z else None)


def pack_extras(data: TargetSet, members: tuple[str, ...] | None, init: Path | None,
                progress: bool = True) -> PackExtras:
    """Here, with TensorFlow and the peers extra: the ensemble's relational targets of every packed face
    (members cached as for `distill embedder --ensemble`, centred on the packed faces) and the starting
    student with its head scaled to unit output length (what `distill embedder --init` does on start)."""
    import tempfile

    relational = None
    if members:
        from facegate.convert.distill.ensemble import ensemble_for, ensemble_vectors
        from facegate.edge.downloads import cache_dir
        relational = ensemble_vectors(list(ensemble_for(data, members, cache_dir() / "distill", progress).values()))
    if init is None:
        return PackExtras(relational=relational)
    import keras

    from facegate.convert.distill.head import unit_length_start
    from facegate.edge.cards import load_card
    student = load_card(init).accuracy.get("student")
    if not student:
        raise ValueError(f"{init}: its card has no student config (is it a distilled student?)")
    model = keras.saving.load_model(init, compile=False)
    unit_length_start(model, data, NORMALISATION)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "init.keras"
        model.save(path)
        return PackExtras(relational=relational, init_model=path.read_bytes(), student=student)


# -- losses (keras.ops, any backend) ------------------------------------------------------------------
def make_loss(weights: dict[str, float], target_dim: int | None = None):
    """Loss on y_true = [teacher target (D) | relational target (R, optional) | identity id] and y_pred =
    raw student output (D). `target_dim` = D when relational targets follow; without them the relational
    term compares the student's similarities with the teacher's."""
    import keras
    from keras import ops

    unknown = [k for k, v in weights.items() if v and k not in PORTABLE_LOSSES]
    if unknown:
        raise ValueError(f"the portable trainer has the losses {PORTABLE_LOSSES}, not {unknown}")

    def loss(y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        d = target_dim or ops.shape(y_true)[1] - 1
        target = ops.cast(y_true[:, :d], "float32")
        relational = ops.cast(y_true[:, d:-1], "float32") if target_dim else target
        unit = y_pred / ops.maximum(ops.norm(y_pred, axis=-1, keepdims=True), 1e-10)
        total = 0.0
        if weights.get("cosine"):
            total = total + weights["cosine"] * ops.mean(1.0 - ops.sum(unit * target, axis=-1))
        if weights.get("l2"):
            total = total + weights["l2"] * ops.mean(ops.sum(ops.square(y_pred - target), axis=-1))
        if weights.get("relational"):
            gram_s = ops.matmul(unit, ops.transpose(unit))
            gram_t = ops.matmul(relational, ops.transpose(relational))
            n = ops.cast(ops.shape(unit)[0], "float32")
            off = 1.0 - ops.eye(ops.shape(unit)[0])
            total = total + weights["relational"] * ops.sum(ops.square(gram_s - gram_t) * off) / (n * (n - 1.0))
        return total

    keras.saving.register_keras_serializable("facegate")(loss)
    return loss


# -- augmented batches from forked CPU workers ---------------------------------------------------------
_WORKER: dict = {}


def _init_worker_state(canvases: np.ndarray, targets: np.ndarray, ids: np.ndarray, batch: int, strength: float) -> None:
    """`targets`: what y carries before the identity id (teacher targets, then any relational ones)."""
    _WORKER.update(canvases=canvases, targets=targets, ids=ids, groups=identity_groups(ids), batch=batch,
                   cfg=AugmentConfig(strength=strength))


def _sample(groups: list[list[int]], n: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """A batch of indices into `n` faces with a quarter of it in groups of up to 4 faces per labelled
    identity (the relational term then sees same-person pairs), the rest uniform."""
    paired = (draw_identity_faces(groups, min(len(groups), max(1, batch // 16)), rng) if groups
              else np.zeros(0, np.int64))
    rest = rng.choice(n, size=batch - len(paired), replace=n < batch - len(paired))
    return np.concatenate([paired, rest]).astype(np.int64)


def _target_columns(train: TargetSet, relational: np.ndarray | None) -> np.ndarray:
    """The teacher's targets, then the relational ones where the pack has them."""
    return train.targets if relational is None else np.concatenate([train.targets, relational], axis=1)


def _targets_and_ids(targets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The y the portable loss reads: teacher target (D) with the identity id as a last column."""
    return np.concatenate([targets, ids[:, None].astype(np.float32)], axis=1)


def _make_batch(seed: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w = _WORKER
    rng = np.random.default_rng(seed)
    idx = _sample(w["groups"], len(w["ids"]), w["batch"], rng)
    x = augment_batch(w["canvases"][idx], rng, w["cfg"])                 # uint8; the model normalises
    return x, _targets_and_ids(w["targets"][idx], w["ids"][idx])


def batches(train: TargetSet, batch: int, strength: float, seed: int, workers: int,
            prefetch: int = 32, relational: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless augmented batches. Workers are forked *before* the caller touches the GPU."""
    ids = label_ids(train.labels)
    _init_worker_state(train.canvases, _target_columns(train, relational), ids, batch, strength)
    if workers <= 0:
        def serial():
            n = 0
            while True:
                yield _make_batch((seed, n))
                n += 1
        return serial()
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))

    def pooled():
        pending: deque = deque()
        n = 0
        try:
            while True:
                while len(pending) < prefetch:
                    pending.append(pool.submit(_make_batch, (seed, n)))
                    n += 1
                yield pending.popleft().result()
        finally:                      # stream.close(): stop the workers
            pool.shutdown(wait=False, cancel_futures=True)
    return pooled()


# -- the model and its training ------------------------------------------------------------------------
def build_training_model(student_config, mixed: bool, init_file: Path | None = None):
    """Student with the input normalisation in front, so workers ship uint8 pixels (4x less data);
    the student is built from `student_config`, or loaded whole from `init_file` (.keras)."""
    import keras

    from facegate.convert.students.mobilefacenet import build_student

    if mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    student = (keras.saving.load_model(init_file, compile=False) if init_file is not None
               else build_student(student_config))
    inputs = keras.Input((STUDENT_SIZE, STUDENT_SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.5 / 128.0, name="normalise")(inputs)
    return keras.Model(inputs, student(x), name="train_student"), student


def embed(model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    out = np.asarray(model.predict(crops, batch_size=batch, verbose=0), np.float32)   # compiled, any backend
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-10)


def recalibrate_bn(model, optimizer, train: TargetSet, batch: int, steps: int = 300,
                   relational: np.ndarray | None = None) -> None:
    """Moving BN statistics from clean crops (training saw augmented ones), like the TF trainer.

    Done as training steps at learning rate 0 (AdamW's decay scales with it, so weights stay put):
    the compiled train step already updates the statistics, on every backend, at full speed."""
    crops = np.ascontiguousarray(train.centre_crops())
    y_all = _targets_and_ids(_target_columns(train, relational), label_ids(train.labels))
    rng = np.random.default_rng(12345)

    def clean():
        while True:
            idx = rng.choice(len(crops), size=batch, replace=len(crops) < batch)
            yield crops[idx], y_all[idx]

    optimizer.learning_rate = 0.0
    model.fit(clean(), steps_per_epoch=steps, epochs=1, verbose=0)


def validate(model, val: TargetSet) -> dict:
    emb = embed(model, np.ascontiguousarray(val.centre_crops()))
    cos = np.sum(emb * val.targets, axis=1)
    out = {"val_cosine_mean": round(float(cos.mean()), 4), "val_cosine_p05": round(float(np.percentile(cos, 5)), 4)}
    ids = label_ids(val.labels)
    out.update({f"val_{k}": v for k, v in pair_accuracy(emb, ids).items()})
    return out


def train(pack: Path, out: Path, steps: int, batch: int = 256, lr: float = 3e-3, weight_decay: float = 5e-5,
          warmup: float = 0.03, width: float = 1.0, depth: float = 1.0, activation: str = "prelu",
          weights: dict | None = None, strength: float = 1.0, hold_out_every: int = 8, seed: int = 0,
          workers: int | None = None, validate_every: int = 500, max_minutes: float | None = None,
          init: Path | None = None, mixed: bool | None = None, recal_steps: int = 300) -> dict:
    """Train for `steps` batches; the best validation (held-out cosine to the teacher) is kept as
    `out/student.weights.h5` with `out/student.json`. Stops early (keeping the best) after
    `max_minutes`."""
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(weights or DEFAULT_WEIGHTS)
    data, extras = read_pack(pack), read_pack_extras(pack)
    held = held_out_mask(data.labels, hold_out_every)
    train_set = data.subset(np.flatnonzero(~held))
    val_set = data.subset(np.flatnonzero(held)) if held.any() else None
    relational = None if extras.relational is None else extras.relational[~held]
    if extras.init_model is not None:
        if init:
            raise ValueError(f"{pack} carries its starting student; --init {init} would replace it")
        (out / INIT_FILE).write_bytes(extras.init_model)
    workers = (os.cpu_count() or 2) - 1 if workers is None else workers
    stream = batches(train_set, batch, strength, seed, workers, relational=relational)   # fork before Keras/GPU load
    next(stream)                                                   # (the pool forks on first use)
    try:
        import keras

        from facegate.convert.students.mobilefacenet import StudentConfig

        backend = keras.backend.backend()
        dim = int(data.targets.shape[1])
        if extras.init_model is not None:           # the packed student (float32: its layers' saved dtypes)
            mixed = False
            model, student = build_training_model(None, False, out / INIT_FILE)
            plain, student_dict = student, extras.student
        else:
            if mixed is None:
                mixed = _has_gpu(backend)
            cfg = StudentConfig(width=width, depth=depth, embedding_dim=dim, activation=activation)
            model, student = build_training_model(cfg, mixed)
            plain = _float32_twin(student, cfg) if mixed else student     # what the weights file is written from
            student_dict = cfg.to_dict()
            if init:
                student.load_weights(init)
        optimizer = keras.optimizers.AdamW(learning_rate=lr * 0.05, weight_decay=weight_decay)
        model.compile(optimizer=optimizer, loss=make_loss(weights, dim if relational is not None else None))
        run = {"pack": str(pack), "backend": backend, "mixed_precision": mixed, "student": student_dict,
               "init_model": INIT_FILE if extras.init_model is not None else None,
               "relational_targets": None if relational is None else int(relational.shape[1]),
               "steps": steps, "batch": batch, "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
               "weights": weights, "augment_strength": strength, "hold_out_every": hold_out_every, "seed": seed,
               "train_faces": len(train_set), "val_faces": 0 if val_set is None else len(val_set),
               "teacher": data.teacher, "normalisation": NORMALISATION}
        log.info("portable distillation: %s", run)
        log_path = out / "log.csv"
        best: dict = {}
        start, done = time.time(), 0
        while done < steps:
            chunk = min(validate_every, steps - done)
            optimizer.learning_rate = learning_rate(progress(done, steps, start, max_minutes), lr, warmup)
            t0 = time.time()
            hist = model.fit(stream, steps_per_epoch=chunk, epochs=1, verbose=0)
            done += chunk
            row = {"step": done, "lr": round(float(optimizer.learning_rate), 6),
                   "loss": round(float(hist.history["loss"][-1]), 5),
                   "images_per_s": round(chunk * batch / (time.time() - t0), 1),
                   "minutes": round((time.time() - start) / 60, 2)}
            if val_set is not None:
                row.update(validate(model, val_set))
            score = row.get("val_cosine_mean", -row["loss"])
            append_csv_row(log_path, row)
            _plot(log_path, out / "loss.png")
            log.info("%s", row)
            if not best or score > best["score"]:
                best = {"score": score, **row}
                _save_weights(student, plain, out / WEIGHTS_FILE)
                (out / RUN_FILE).write_text(json.dumps({"run": run, "best": best}, indent=2))
            if done < steps and progress(done, steps, start, max_minutes) >= 1.0:
                log.info("time budget of %.1f minutes spent at step %d", max_minutes, done)
                break
        run["steps_done"] = done
        if val_set is not None and recal_steps > 0:
            # moving BN statistics were gathered on augmented faces; re-estimate them on clean ones
            # (what the runtime sees) and keep that version if it is closer to the teacher
            student.load_weights(out / WEIGHTS_FILE)
            recalibrate_bn(model, optimizer, train_set, batch, steps=recal_steps, relational=relational)
            row = {"step": best.get("step", done), "recalibrated": True, **validate(model, val_set)}
            append_csv_row(log_path, row)
            log.info("after BN recalibration: %s", row)
            if row["val_cosine_mean"] > best["score"]:
                best = {**best, **row, "score": row["val_cosine_mean"]}
                _save_weights(student, plain, out / WEIGHTS_FILE)
        (out / RUN_FILE).write_text(json.dumps({"run": run, "best": best}, indent=2))
        return {"run": run, "best": best}
    finally:
        stream.close()


def progress(done: int, steps: int, start: float, max_minutes: float | None) -> float:
    """How far through the run we are: by steps, or by the time budget if that runs out first, so
    the learning-rate schedule always completes inside a fixed machine lease."""
    frac = done / max(steps, 1)
    if max_minutes:
        frac = max(frac, (time.time() - start) / 60.0 / max_minutes)
    return min(frac, 1.0)


def learning_rate(frac: float, peak: float, warmup: float) -> float:
    """Linear warm-up to `peak` over the first `warmup` of the run, then cosine decay to 1% of it."""
    if frac < warmup:
        return peak * (0.05 + 0.95 * frac / warmup)
    t = (frac - warmup) / max(1.0 - warmup, 1e-9)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def _has_gpu(backend: str) -> bool:
    try:
        if backend == "jax":
            import jax
            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch
            return bool(torch.cuda.is_available())
    except Exception:   # noqa: BLE001 - no accelerator library: CPU
        return False
    return False


def _float32_twin(student, cfg):
    """The same student built under the float32 policy (a mixed-precision model's weights are
    written through it, so the file loads into `build_student(cfg)` on any machine)."""
    import keras

    from facegate.convert.students.mobilefacenet import build_student

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return build_student(cfg)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _save_weights(student, plain, path: Path) -> None:
    if plain is not student:
        plain.set_weights([np.asarray(w, np.float32) for w in student.get_weights()])
    tmp = path.with_name("partial." + path.name)
    plain.save_weights(tmp)
    os.replace(tmp, path)


def _plot(log_path: Path, out: Path) -> None:
    try:
        plot_log(log_path, out)
    except ImportError:          # a training box without matplotlib: the CSV is still there
        log.warning("matplotlib missing: no loss plot")


# -- back on the workstation -------------------------------------------------------------------------
def load_trained(run_dir: Path):
    """(student model in float32, the run's json) from a portable run folder."""
    from facegate.convert.students.mobilefacenet import StudentConfig, build_student

    info_path, weights_path = run_dir / RUN_FILE, run_dir / WEIGHTS_FILE
    if not info_path.exists() or not weights_path.exists():
        raise FileNotFoundError(f"{run_dir} has no {RUN_FILE} + {WEIGHTS_FILE} (is it a portable run's --out?)")
    info = json.loads(info_path.read_text())
    if info["run"].get("init_model"):                  # a packed student: its architecture came with it
        import keras
        model = keras.saving.load_model(run_dir / info["run"]["init_model"], compile=False)
    else:
        model = build_student(StudentConfig(**info["run"]["student"]))
    model.load_weights(weights_path)
    return model, info


def import_student(run_dir: Path, out: Path) -> dict:
    """`facegate distill import`: a portable run folder -> `student.keras` with its card."""
    from facegate.convert.distill.embedder import save_student_file

    model, info = load_trained(run_dir)
    run, best = info["run"], info["best"]
    save_student_file(model, out, metrics=best, config=run, student=run["student"], teacher=run["teacher"],
                      source=f"python -m facegate.convert.distill.portable train ({run['backend']} backend), "
                             f"imported by facegate distill import")
    return {"student": str(out), **{k: best.get(k) for k in ("step", "val_cosine_mean", "val_pair_accuracy")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facegate.convert.distill.portable",
                                description="distil the embedder student on any Keras 3 backend (no TensorFlow needed)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("pack", type=Path)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--weight-decay", type=float, default=5e-5)
    t.add_argument("--width", type=float, default=1.0)
    t.add_argument("--depth", type=float, default=1.0)
    t.add_argument("--activation", choices=("prelu", "relu"), default="prelu")
    t.add_argument("--loss", action="append", metavar="NAME=WEIGHT")
    t.add_argument("--augment", type=float, default=1.0)
    t.add_argument("--hold-out-every", type=int, default=8)
    t.add_argument("--workers", type=int, default=None)
    t.add_argument("--validate-every", type=int, default=500)
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--init", type=Path, default=None, help="start from a student.weights.h5")
    t.add_argument("--recal-steps", type=int, default=300, help="steps re-estimating BN statistics on clean faces at the end")
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)      # its font search is not the run's log
    try:
        weights = parse_loss_weights(args.loss, DEFAULT_WEIGHTS)
    except ValueError as e:
        p.error(str(e))
    result = train(args.pack, args.out, args.steps, batch=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                   width=args.width, depth=args.depth, activation=args.activation, weights=weights,
                   strength=args.augment, hold_out_every=args.hold_out_every, workers=args.workers,
                   validate_every=args.validate_every, max_minutes=args.max_minutes, init=args.init, seed=args.seed,
                   recal_steps=args.recal_steps)
    print(json.dumps(result["best"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
