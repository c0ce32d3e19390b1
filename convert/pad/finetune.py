"""Fine-tune the MiniFASNets on pad_dev (CPU-feasible: 0.44 M parameters, 80x80 inputs).

Each net learns from its own crop scale. Training views look like a door camera: the face box
jittered (a detector is never exact), exposure, greyscale/IR, a little blur, noise and JPEG (from the
embedder's door augmentation), and horizontal flips. The loss is binary cross-entropy on the live
probability (softmax class 1), so the pretrained 3-class head is kept. Batch-norm statistics stay
frozen (a thousand images cannot re-estimate them). The checkpoint with the best validation loss is
kept; the log is a CSV beside it and a plot is drawn from it.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.convert.distill.augment import exposure, grey_or_ir
from facegate.convert.pad.data import PadSample
from facegate.convert.pad.synthetic import synthetic_attack
from facegate.edge.face.liveness import pad_crop
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 10
    batch: int = 32
    learning_rate: float = 1e-4
    box_jitter: float = 0.08       # shift and size of the face box, as a fraction of its size
    photometric: float = 0.7
    grey: float = 0.1
    blur: float = 0.1
    noise: float = 0.2
    jpeg: float = 0.3
    seed: int = 0
    train_layers: str = "all"      # "all", or "head": only the last two dense layers learn
    keep_pretrained: float = 0.0   # weight of "learning without forgetting": the published nets' live
                                   # probability on the same view as a second target (0: off)
    synthetic_attacks: float = 0.0  # share of live training views turned into a synthetic replay or
                                    # print of that person (convert/pad/synthetic.py; 0: off)
    activation: str = "prelu"      # "relu": the published PReLUs replaced by ReLU before fine-tuning
                                   # (minifasnet.with_relu: an int8 file without float PReLU passes)


HEAD_LAYERS = ("linear", "prob")


def jitter_box(box: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx, dy = rng.uniform(-amount, amount, 2) * (w, h)
    s = 1 + rng.uniform(-amount, amount)
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    return np.array([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], np.float32)


def training_view(rgb: np.ndarray, box: np.ndarray, scale: float, rng: np.random.Generator,
                  cfg: FinetuneConfig, synthetic: bool = False) -> np.ndarray:
    """One augmented 80x80 BGR float crop; `synthetic`: re-displayed as a replay or print first."""
    x = pad_crop(rgb, jitter_box(box, rng, cfg.box_jitter), scale, 80, bgr=False)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if synthetic:
        x = synthetic_attack(np.clip(x, 0, 255).astype(np.uint8), rng).astype(np.float32)
    if rng.random() < cfg.photometric:
        x = exposure(x, rng)
    if rng.random() < cfg.grey:
        x = grey_or_ir(x, rng)
    if rng.random() < cfg.blur:
        x = cv2.GaussianBlur(np.ascontiguousarray(x), (3, 3), 0)
    if rng.random() < cfg.noise:
        x = x + rng.normal(0, rng.uniform(2, 6), x.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(x), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(x[:, :, ::-1], dtype=np.float32)


def training_batch(batch: list[PadSample], images: dict[str, np.ndarray], boxes: dict, scale: float,
                   rng: np.random.Generator, cfg: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Augmented views (N, 80, 80, 3) and live labels (N, 1); with `cfg.synthetic_attacks`, that share
    of the live samples comes back as a synthetic attack of the same person, labelled as an attack."""
    # no draw at all when off: the recipe without synthetic attacks keeps its exact random stream
    fake = [cfg.synthetic_attacks > 0 and s.live and rng.random() < cfg.synthetic_attacks for s in batch]
    x = np.stack([training_view(images[s.key], boxes[s.key], scale, rng, cfg, f) for s, f in zip(batch, fake)])
    return x, np.array([s.live and not f for s, f in zip(batch, fake)], np.float32)[:, None]


def crops(images: dict[str, np.ndarray], samples: list[PadSample], boxes: dict, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Clean (validation) crops and labels for the samples with a face."""
    keep = [s for s in samples if boxes.get(s.key) is not None]
    x = np.stack([pad_crop(images[s.key], boxes[s.key], scale, 80) for s in keep]) if keep else np.zeros((0, 80, 80, 3))
    return x.astype(np.float32), np.array([s.live for s in keep], np.float32)


def load_images(samples: list[PadSample]) -> dict[str, np.ndarray]:
    return {s.key: load_rgb(s.path) for s in samples}


def _live_bce(y_true, y_pred):
    """Binary cross-entropy on the live probability; y_true is (label,) or (label, weight, soft target):
    the second term pulls towards the published nets' own answer on the view."""
    from keras import ops
    p = ops.clip(y_pred[:, 1], 1e-6, 1 - 1e-6)
    y = ops.reshape(y_true[:, 0], (-1,))
    loss = -ops.mean(y * ops.log(p) + (1 - y) * ops.log(1 - p))
    if y_true.shape[-1] == 3:
        w, q = y_true[:, 1], y_true[:, 2]
        loss = loss - ops.mean(w * (q * ops.log(p) + (1 - q) * ops.log(1 - p)))
    return loss


def finetune(model, scale: float, images: dict[str, np.ndarray], train: list[PadSample], val: list[PadSample],
             boxes: dict, out: Path, cfg: FinetuneConfig = FinetuneConfig(), progress: bool = True,
             published=None) -> dict:
    """Train `model` in place; writes `<out>.keras` (best validation loss), `<out>.log.csv`; returns
    the history. `published`: the net whose answers `cfg.keep_pretrained` keeps (default, or `model`
    itself: a frozen copy of `model` as it starts; a ReLU net passes the published PReLU net, which is
    what it should not forget)."""
    import keras
    rng = np.random.default_rng(cfg.seed)
    if cfg.train_layers not in ("all", "head"):
        raise ValueError(f"train_layers must be 'all' or 'head', not {cfg.train_layers!r}")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif cfg.train_layers == "head" and layer.name not in HEAD_LAYERS:
            layer.trainable = False
    teacher = None
    if cfg.keep_pretrained > 0:                  # the published nets: what they should not forget
        teacher = published
        if teacher is None or teacher is model:         # a frozen copy: `model` itself is about to move
            teacher = keras.models.clone_model(model)
            teacher.set_weights(model.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=_live_bce)
    train = [s for s in train if boxes.get(s.key) is not None]
    x_val, y_val = crops(images, val, boxes, scale)
    history, best = [], np.inf
    out.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), cfg.batch):
            batch = [train[i] for i in order[start:start + cfg.batch]]
            x, y = training_batch(batch, images, boxes, scale, rng, cfg)
            if teacher is not None:
                soft = np.asarray(teacher.predict_on_batch(x))[:, 1:2]
                y = np.concatenate([y, np.full_like(y, cfg.keep_pretrained), soft], axis=1)
            losses.append(float(model.train_on_batch(x, y)))
            if progress:
                done = min(start + cfg.batch, len(order)) / len(order)
                print(f"\repoch {epoch}/{cfg.epochs} [{'#' * int(25 * done):<25}] loss {np.mean(losses):.4f}",
                      end="", flush=True)
        val_loss = float(model.evaluate(x_val, y_val[:, None], verbose=0)) if len(x_val) else float("nan")
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 5), "val_loss": round(val_loss, 5)}
        history.append(row)
        if progress:
            print(f"  val {val_loss:.4f}", flush=True)
        if epoch == 1 or val_loss < best:      # (a tiny run without validation keeps the first)
            best = min(best, val_loss) if val_loss == val_loss else best
            model.save(out.with_suffix(".keras"))
        with out.with_suffix(".log.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(history)
    return {"history": history, "best_val_loss": best, "checkpoint": str(out.with_suffix(".keras"))}


def plot_history(histories: dict[str, list[dict]], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        ax.plot(ep, [h["train_loss"] for h in hist], "--", label=f"{name} train")
        ax.plot(ep, [h["val_loss"] for h in hist], "-", label=f"{name} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("live BCE")
    ax.set_title("MiniFASNet fine-tuning on pad_dev (subject-disjoint validation)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
