"""`facegate distill detector`: train the MobileNet MTCNN students from the teacher, net by net in
cascade order (P-Net, then R-Net on the student P-Net's proposals, then O-Net on the student P+R
proposals).

Losses (seed 003's weights as the starting point): face score 1.0 — binary KL divergence from the
teacher's probability with online hard example mining (only the 70% of samples/windows in each
batch farthest from the teacher contribute); box regression 0.5 and landmarks 1.0 — squared error to the teacher's
outputs, weighted by the teacher's face probability (regressions of background windows are noise);
optionally `logit` — squared error of the face log-odds, which orders confident detections (AP).
Each net keeps a checkpoint per epoch in `<out>/checkpoints/<net>`; a finished net is saved as
`<out>/<net>.keras` and skipped when the command runs again, so an interrupted run resumes.
`init` starts each net from an earlier run's `<net>.keras` when the widths match (fine-tuning on
more data costs a fraction of training from scratch; a net whose widths changed starts fresh).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.convert.distill import detector_data as dd
from facegate.convert.distill.runlog import append_csv_row
from facegate.convert.export.mtcnn_set import NETS
from facegate.convert.students.mtcnn import DetectorStudentConfig
from facegate.edge.detect.mtcnn import split_outputs
from facegate.edge.errors import DatasetError

log = logging.getLogger(__name__)

LOSS_WEIGHTS = {"cls": 1.0, "box": 0.5, "landmarks": 1.0, "logit": 0.0}
# int8 calibration: the first 300 of a seeded 1,000-crop draw per net. All 1,000 raised held-out
# AP (0.658 vs 0.621 easy) but the P/R-Net lost a large face in a test photo: kept at 300 until
# that is understood (docs/experiments.md, "int8 detector details")
CALIBRATION_CROPS = 300
REFIT_CROPS = 20_000   # crops (P-Net: patches) a factorised net's layers are refit on
LOGIT_CLIP = 12.0      # |log-odds| beyond this is float32 rounding of a probability near 0 or 1


@dataclass
class DetectorDistillConfig:
    out: Path
    epochs: dict = field(default_factory=lambda: {"pnet": 40, "rnet": 40, "onet": 30})
    batch: dict = field(default_factory=lambda: {"pnet": 64, "rnet": 256, "onet": 128})
    lr: float = 3e-3
    ohem_keep: float = 0.7
    loss_weights: dict = field(default_factory=lambda: dict(LOSS_WEIGHTS))
    pnet_patches_per_image: int = 24
    max_candidates: int = 300
    jitter_per_face: int = 6
    photos: int = 300                 # LFW + CelebA portrait photos added to the WIDER training split
    camera_share: float = 0.0         # share of samples mirrored/degraded before the teacher labels them
    online_views: float = 0.0         # share of each batch re-viewed (crop_views) and relabelled by the teacher
    wider_repeat: int = 1             # passes over the WIDER training images for R-Net/O-Net crops
    init: Path | None = None          # earlier run folder whose <net>.keras start the nets
    student: DetectorStudentConfig = field(default_factory=DetectorStudentConfig)
    wider_holdout_every: int = 4      # WIDER images i % N == 0 are never trained on
    max_images: int | None = None     # cap on WIDER training images (quick runs)
    seed: int = 0
    progress: bool = True

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        d["init"] = str(self.init) if self.init else None
        return d


def detector_losses(outputs, targets: dict, weights: dict, ohem_keep: float) -> dict:
    import tensorflow as tf
    out = split_outputs(outputs)   # by last dimension, like the edge cascade
    p = tf.reshape(out["prob"][..., 1], [-1])
    t = tf.reshape(targets["prob"], [-1])
    eps = 1e-6
    # KL(teacher || student) = cross-entropy minus the teacher's own entropy: zero when the student
    # matches, so "hard" (OHEM) means far from the teacher, not merely a window the teacher is unsure of
    kl = (t * (tf.math.log(t + eps) - tf.math.log(p + eps))
          + (1 - t) * (tf.math.log(1 - t + eps) - tf.math.log(1 - p + eps)))
    k = tf.maximum(1, tf.cast(tf.cast(tf.size(kl), tf.float32) * ohem_keep, tf.int32))
    terms = {"cls": tf.reduce_mean(tf.math.top_k(kl, k).values)}
    if weights.get("logit", 0.0) > 0:
        # the score ranks detections for AP, and among confident faces (p > 0.99) the probability
        # KL is flat: match log-odds too, both clipped where float32 probabilities saturate
        s_logit = tf.math.log(p + 1e-12) - tf.math.log(tf.reshape(out["prob"][..., 0], [-1]) + 1e-12)
        t_logit = tf.math.log(t + 1e-12) - tf.math.log(tf.maximum(1 - t, 0.0) + 1e-12)
        terms["logit"] = tf.reduce_mean(tf.square(tf.clip_by_value(s_logit, -LOGIT_CLIP, LOGIT_CLIP)
                                                  - tf.clip_by_value(t_logit, -LOGIT_CLIP, LOGIT_CLIP)))
    w = tf.reshape(targets["prob"], [-1])
    for name in ("box", "landmarks"):
        if name in out and name in targets:
            d = tf.reshape(out[name], [tf.size(w), -1]) - tf.reshape(targets[name], [tf.size(w), -1])
            terms[name] = tf.reduce_sum(w * tf.reduce_sum(tf.square(d), axis=1)) / (tf.reduce_sum(w) + eps)
    terms["total"] = tf.add_n([weights.get(k_, 0.0) * v for k_, v in terms.items()])
    return terms


def train_net(net: str, model, samples: dict, cfg: DetectorDistillConfig, teacher_net=None) -> dict:
    """Fit one student net to its teacher targets; checkpoint each epoch; resumable.

    With `cfg.online_views` > 0 and the teacher net given, that share of every batch is replaced by
    new views of its crops (`crop_views`) labelled by the teacher on the spot, so no two epochs
    show the same pictures."""
    import keras
    import tensorflow as tf

    folder = cfg.out / "checkpoints" / net
    epochs, batch = int(cfg.epochs[net]), int(cfg.batch[net])
    n = len(samples["x"])
    steps = max(1, n // batch)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, steps * epochs), alpha=0.02)
    opt = keras.optimizers.Adam(schedule)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, folder, max_to_keep=1)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log.info("%s: resumed at epoch %d", net, int(epoch_var))
    keys = [k for k in ("prob", "box", "landmarks") if k in samples]
    online = cfg.online_views > 0
    if online and teacher_net is None:
        raise ValueError("online_views needs the teacher net to label the new views")

    @tf.function
    def step(x, *ys):
        with tf.GradientTape() as tape:
            terms = detector_losses(model(x, training=True), dict(zip(keys, ys)), cfg.loss_weights, cfg.ohem_keep)
        opt.apply_gradients(zip(tape.gradient(terms["total"], model.trainable_variables), model.trainable_variables))
        return terms

    rng = np.random.default_rng(cfg.seed)
    log_rows = []
    while int(epoch_var) < epochs:
        e = int(epoch_var)
        order = np.random.default_rng(cfg.seed * 100 + e).permutation(n)
        sums: dict[str, float] = {}
        t0 = time.time()
        bar = tqdm(range(steps), desc=f"{net} epoch {e + 1}/{epochs}", unit="batch", disable=not cfg.progress)
        for s in bar:
            idx = order[s * batch:(s + 1) * batch]
            x = samples["x"][idx].astype(np.float32)
            # online: new views labelled by the teacher (exact, mirroring included); otherwise mirror
            # half the batches with the targets mirrored geometrically: an approximation (the teacher
            # is only nearly mirror-symmetric) that doubles the views; not for O-Net, whose landmark
            # order (left/right eye) would have to be swapped too
            if online:
                ys = [samples[k][idx].copy() for k in keys]
                sel = np.flatnonzero(rng.random(len(x)) < cfg.online_views)
                if len(sel):
                    x[sel] = dd.crop_views(x[sel], rng, camera_share=0.5)
                    for y, fresh_y in zip(ys, dd.relabel(teacher_net, x[sel], keys)):
                        y[sel] = fresh_y
            elif rng.random() < 0.5 and net != "onet":
                x = x[:, :, ::-1]
                ys = [samples[k][idx][:, :, ::-1] if samples[k].ndim == 4 else samples[k][idx] for k in keys]
                ys = [_mirror_box(y) if k == "box" else y for k, y in zip(keys, ys)]
            else:
                ys = [samples[k][idx] for k in keys]
            terms = step(tf.constant(np.ascontiguousarray(x)), *[tf.constant(np.ascontiguousarray(y)) for y in ys])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{sums['total'] / (s + 1):.4f}")
        epoch_var.assign(e + 1)
        manager.save()
        row = {"net": net, "epoch": e + 1, "seconds": round(time.time() - t0, 1),
               **{f"loss_{k}": round(v / steps, 5) for k, v in sums.items()}}
        log_rows.append(row)
        append_csv_row(cfg.out / "log.csv", row)
        log.info("%s", row)
    return log_rows[-1] if log_rows else {}


def plot_detector_log(log_path: Path, out: Path) -> None:
    """One panel per net: its loss terms per epoch (log scale), so a stalled or diverging net shows."""
    import csv

    from facegate.convert.evaluate.report import pyplot
    plt = pyplot()

    rows = list(csv.DictReader(log_path.open())) if log_path.exists() else []
    nets = [n for n in NETS if any(r["net"] == n for r in rows)]
    if not nets:
        return
    fig, axes = plt.subplots(1, len(nets), figsize=(4.2 * len(nets), 3.6), squeeze=False)
    for ax, net in zip(axes[0], nets):
        mine = [r for r in rows if r["net"] == net]
        epochs = [int(r["epoch"]) for r in mine]
        for key in ("loss_total", "loss_cls", "loss_box", "loss_landmarks", "loss_logit"):
            values = [float(r[key]) if r.get(key) else float("nan") for r in mine]
            if any(v == v for v in values):
                ax.plot(epochs, values, label=key[5:])
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{net}: losses to the teacher")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _mirror_box(box: np.ndarray) -> np.ndarray:
    """Box regression (dx1, dy1, dx2, dy2) of a horizontally mirrored window: dx1' = -dx2, dx2' = -dx1."""
    out = box.copy()
    out[..., 0], out[..., 2] = -box[..., 2], -box[..., 0]
    return out


def tflite_backend(model, folder: Path):
    """A Keras net as a LiteRT backend (much faster than Keras calls for the cascade's many small runs)."""
    from facegate.convert.export.tflite import export_tflite
    from facegate.edge.backends import load_backend
    path = export_tflite(model, folder / f"{model.name}.tflite")
    return load_backend(path, backend="litert")


def load_or_cache(path: Path, make) -> dict:
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return data


def training_images(cfg: DetectorDistillConfig) -> list[dd.TrainImage]:
    from facegate.convert.datasets import celeba_images, lfw_dir, wider_dir
    from facegate.convert.distill.sources import lfw_training_photos, sample
    from facegate.edge.images import list_images

    every = cfg.wider_holdout_every
    images = dd.wider_images(wider_dir(), lambda i: every <= 0 or i % every != 0) if wider_dir().is_dir() else []
    if cfg.max_images:
        images = images[: cfg.max_images]
    photos: list[Path] = []
    if cfg.photos and (lfw_dir() / "pairs.txt").exists():
        photos += [p.path for p in sample(lfw_training_photos(lfw_dir()), cfg.photos // 2, cfg.seed)]
    if cfg.photos and celeba_images().is_dir():
        cel = list_images(celeba_images())
        photos += [cel[i] for i in np.random.default_rng(cfg.seed).choice(len(cel), cfg.photos // 2, replace=False)]
    images += dd.photo_images(photos)
    if not images:
        raise DatasetError("no detector training images found (../shared/datasets/wider_val_dev etc.)")
    return images


def distill_detector(cfg: DetectorDistillConfig) -> dict:
    """Train pnet -> rnet -> onet students; returns per-net final losses and sample counts."""
    import keras

    from facegate.convert.students.mtcnn import build_student_nets
    from facegate.edge.detect.mtcnn import MTCNN
    from facegate.edge.registry import load_detector

    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
    teacher = load_detector("mtcnn-teacher", fmt="tflite", config=dd.default_config())
    images = training_images(cfg)
    log.info("detector distillation on %d images", len(images))
    # crowds are what the portraits lack (small, blurred, occluded faces; many near-faces): extra
    # passes over the WIDER photos draw new jitters, background candidates and camera views of them
    labelled = [im for im in images if len(im.boxes)]
    stage_images = labelled * (max(1, cfg.wider_repeat) - 1) + images
    fresh = build_student_nets(cfg.student)
    if cfg.init:
        _start_from(fresh, cfg.init)
    students: dict = {}
    summary: dict = {"images": len(images), "student": cfg.student.to_dict(), "nets": {}}
    tmp = Path(tempfile.mkdtemp(prefix="facegate-distill-"))
    rng = np.random.default_rng(cfg.seed)
    for net in NETS:
        final = cfg.out / f"{net}.keras"
        if net == "pnet":
            make = lambda: dd.pnet_samples(images, teacher.pnet, teacher, cfg.pnet_patches_per_image, rng,  # noqa: E731
                                           cfg.progress, camera_share=cfg.camera_share)
        else:
            nets = [tflite_backend(students[n], tmp) if n in students else getattr(teacher, n) for n in NETS]
            cascade = MTCNN(*nets, config=dd.default_config(), name="student-so-far")
            make = lambda net=net, cascade=cascade: dd.stage_samples(  # noqa: E731
                net, stage_images, cascade, getattr(teacher, net), teacher, cfg.max_candidates, cfg.jitter_per_face, rng=rng,
                progress=cfg.progress, camera_share=cfg.camera_share)
        if final.exists():
            students[net] = keras.saving.load_model(final, compile=False)
            summary["nets"][net] = {"skipped": "already trained"}
            continue
        samples = load_or_cache(cfg.out / "data" / f"{net}.npz", make)
        pos = float(np.mean(samples["prob"] > 0.5))
        log.info("%s: %d samples (%.1f%% face windows by the teacher)", net, len(samples["x"]), 100 * pos)
        fitted = {}
        if cfg.student.factorised(net) and not cfg.init and not (cfg.out / "checkpoints" / net).exists():
            fitted = _from_teacher(net, fresh[net], samples["x"], cfg.seed)
        last = train_net(net, fresh[net], samples, cfg, teacher_net=getattr(teacher, net))
        plot_detector_log(cfg.out / "log.csv", cfg.out / "loss.png")
        fresh[net].save(final)
        students[net] = fresh[net]
        summary["nets"][net] = {"samples": int(len(samples["x"])), "teacher_face_fraction": round(pos, 4), **fitted,
                                **last}
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _from_teacher(net: str, model, crops: np.ndarray, seed: int) -> dict:
    """Initialise a factorised student net from the teacher (SVD split + ridge refit on its crops)."""
    from facegate.convert.students import factorize
    from facegate.convert.teachers.mtcnn import build_teacher_net

    teacher = build_teacher_net(net)
    energy = factorize.transfer(model, teacher)
    pick = np.random.default_rng(seed).permutation(len(crops))[:REFIT_CROPS]
    errors = factorize.refit(model, teacher, crops[np.sort(pick)].astype(np.float32), seed=seed)
    log.info("%s: factorised from the teacher (kept energy %s), refit errors %s", net, energy, errors)
    return {"svd_energy": {k: round(v, 4) for k, v in energy.items()},
            "refit_error": {k: round(v, 4) for k, v in errors.items()}}


def _start_from(nets: dict, folder: Path) -> None:
    """Copy weights from `folder/<net>.keras` into the matching fresh nets (same layer shapes)."""
    import keras
    for name, model in nets.items():
        path = folder / f"{name}.keras"
        if not path.exists():
            raise DatasetError(f"--init {folder}: no {path.name}; give the --out folder of an earlier "
                               "`facegate distill detector` run")
        old = keras.saving.load_model(path, compile=False)
        if [w.shape for w in old.weights] != [w.shape for w in model.weights]:
            log.warning("%s: widths differ from %s, training it from scratch", name, path)
            continue
        model.set_weights(old.get_weights())
        log.info("%s: starts from %s", name, path)


def export_detector(src: Path, out_root: Path, name: str = "mtcnn-student", int8: bool = True,
                    command: str = "", thresholds: tuple[float, float, float] | None = None) -> list[Path]:
    """Export trained student nets as `<out_root>/<name>` (fp32) and `<name>-int8` folders, the int8
    nets calibrated on their own training crops (`<src>/data/<net>.npz`); `thresholds` (P, R, O
    cascade score thresholds, tuned on training images) go into the cards."""
    import keras

    from facegate.convert.export.mtcnn_set import export_mtcnn_set

    missing = [n for n in NETS if not (src / f"{n}.keras").exists()]
    if missing:
        raise DatasetError(f"{src} has no trained {', '.join(missing)} (.keras); run `facegate distill detector` first")
    nets = {n: keras.saving.load_model(src / f"{n}.keras", compile=False) for n in NETS}
    summary = json.loads((src / "summary.json").read_text()) if (src / "summary.json").exists() else {}
    extra = {"distillation": {"command": "facegate distill detector", "summary": summary,
                              "student": summary.get("student", DetectorStudentConfig().to_dict())},
             "export_command": command}
    source = "distilled from mtcnn-teacher (mtcnn 1.0.0 weights) by facegate distill detector"
    notes = ("MobileNet-style student (depthwise-separable convolutions); same inputs/outputs as the teacher, "
             "run by facegate.edge.detect.MTCNN unchanged.")
    written = export_mtcnn_set(nets, out_root / name, name, source, notes=notes, extra=extra,
                               face_thresholds=thresholds)
    if int8:
        lost = [n for n in NETS if not (src / "data" / f"{n}.npz").exists()]
        if lost:
            raise DatasetError(f"int8 export calibrates on the training crops, but {src / 'data'} has no "
                               f"{', '.join(n + '.npz' for n in lost)}; rerun `facegate distill detector` there "
                               "or export with --no-int8")
        rep = {}
        for n in NETS:
            with np.load(src / "data" / f"{n}.npz") as z:
                x = z["x"]
                draw = np.random.default_rng(0).choice(len(x), size=min(1000, len(x)), replace=False)
                rep[n] = x[draw[:CALIBRATION_CROPS]]
        written += export_mtcnn_set(nets, out_root / f"{name}-int8", f"{name}-int8", source, quant="int8",
                                    representative=rep,
                                    notes=notes + " int8 (final softmax kept float: int8 steps of 1/256 would tie "
                                    f"confident faces), calibrated on {CALIBRATION_CROPS} training crops.",
                                    extra=extra, face_thresholds=thresholds)
    return written
