"""Start a MobileNet MTCNN student from the teacher itself instead of from random weights.

Every teacher convolution after the first (k x k, C_in -> C_out) is split into a depthwise-separable
pair: a k x k depthwise convolution with `multiplier` filters per input channel, then a 1x1
pointwise convolution. For one input channel the teacher's weights form a (k*k, C_out) matrix; its
best rank-m approximation (SVD) gives that channel's m depthwise filters and their pointwise rows,
so with m = k*k the pair reproduces the teacher exactly and with m = 2-3 it keeps most of it.

Then `refit` makes the approximation data-aware, layer by layer in network order: each pointwise
convolution, fully connected layer and output head is re-solved by ridge regression so that, fed
the *student's* own features of real crops, it reproduces the teacher layer's pre-activation output
on the same crops (errors of earlier layers are compensated by later ones). The depthwise filters
stay the SVD's. Distillation then only has to close a small gap, which is what 303 WIDER photos on a
CPU can do: trained from scratch, the nets memorised their crops (docs/experiments.md, "Designed nets
trained from scratch").
"""
from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger(__name__)

RIDGE = 1e-4            # ridge strength relative to the mean feature energy
MAX_ROWS = 200_000      # rows (crops x output pixels) per least-squares fit


def separable_split(kernel: np.ndarray, multiplier: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(depthwise kernel (k, k, C_in, m), pointwise kernel (1, 1, C_in*m, C_out), kept energy) of a
    (k, k, C_in, C_out) convolution kernel; Keras orders depthwise outputs channel-major (c*m + j)."""
    kh, kw, cin, cout = kernel.shape
    m = int(multiplier)
    dw = np.zeros((kh, kw, cin, m), np.float32)
    pw = np.zeros((1, 1, cin * m, cout), np.float32)
    kept = []
    for c in range(cin):
        u, s, vt = np.linalg.svd(kernel[:, :, c, :].reshape(kh * kw, cout), full_matrices=False)
        r = min(m, len(s))
        kept.append(float((s[:r] ** 2).sum() / max((s ** 2).sum(), 1e-30)))
        root = np.sqrt(s[:r])
        dw[:, :, c, :r] = (u[:, :r] * root).reshape(kh, kw, r)
        pw[0, 0, c * m:c * m + r, :] = vt[:r] * root[:, None]
    return dw, pw, float(np.mean(kept))


def teacher_layer(name: str) -> str:
    """The teacher layer a student layer stands in for (`conv2_pw` -> `conv2`)."""
    return name.removesuffix("_pw")


def transfer(student: keras.Model, teacher: keras.Model) -> dict[str, float]:
    """Copy the teacher's weights into a factorised student of the same layout (SVD for the separable
    pairs, permuted rows for the dense layer after the flatten); returns the kept energy per split conv."""
    t = {layer.name: layer for layer in teacher.layers}
    energy: dict[str, float] = {}
    for previous, layer in zip([None, *student.layers[:-1]], student.layers):
        if not layer.weights or layer.name.endswith("_pw"):
            continue                                  # pointwise halves are set with their depthwise
        if layer.name.endswith("_dw"):
            base = layer.name.removesuffix("_dw")
            kernel, bias = t[base].get_weights()
            dw, pw, energy[base] = separable_split(kernel, layer.get_config()["depth_multiplier"])
            layer.set_weights([dw])
            student.get_layer(base + "_pw").set_weights([pw, bias])
            continue
        weights = t[teacher_layer(layer.name)].get_weights()
        if isinstance(previous, keras.layers.Flatten):
            weights[0] = _unpermute_rows(weights[0], tuple(int(d) for d in previous.input.shape[1:]))
        layer.set_weights(weights)
    return energy


def refit(student: keras.Model, teacher: keras.Model, crops: np.ndarray, ridge: float = RIDGE,
          seed: int = 0, batch: int = 256) -> dict[str, float]:
    """Re-solve the student's linear layers (pointwise, dense, heads) in order so each reproduces its
    teacher layer's pre-activation output on `crops` (normalised net inputs); returns the relative
    error of each fitted layer after the fit.

    Features are computed `batch` crops at a time and only their second moments are kept (O-Net's
    first feature maps for 20,000 crops would be 6 GB); at most MAX_ROWS rows (crops x output
    pixels) are drawn, spread evenly over the batches."""
    rng = np.random.default_rng(seed)
    errors: dict[str, float] = {}
    first_conv = next(layer.name for layer in student.layers if isinstance(layer, keras.layers.Conv2D))
    for layer in student.layers:
        if not layer.weights or layer.name.endswith("_dw") or isinstance(layer, keras.layers.PReLU):
            continue
        if layer.name == first_conv:
            continue                                  # the plain first conv is the teacher's own
        features = keras.Model(student.input, layer.input)
        teacher_output = _pre_activation(teacher, teacher_layer(layer.name))
        moments = _Moments()
        starts = range(0, len(crops), batch)
        keep = max(1, MAX_ROWS // len(starts))
        for start in starts:
            x = np.asarray(crops[start:start + batch], np.float32)
            feats = _rows(features(x, training=False))
            target = _rows(teacher_output(x))
            if len(feats) > keep:
                pick = rng.choice(len(feats), keep, replace=False)
                feats, target = feats[pick], target[pick]
            moments.add(feats, target)
        w, b, errors[layer.name] = moments.solve(ridge)
        kernel = layer.get_weights()[0]
        layer.set_weights([w.reshape(kernel.shape).astype(np.float32), b.astype(np.float32)])
        log.info("refit %s: relative error %.4f", layer.name, errors[layer.name])
    return errors


class _Moments:
    """Running sums for a ridge regression of targets on features (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.sf = self.st = self.ff = self.ft = None
        self.tt = 0.0

    def add(self, feats: np.ndarray, target: np.ndarray) -> None:
        f, t = feats.astype(np.float64), target.astype(np.float64)
        if self.sf is None:
            self.sf, self.st = np.zeros(f.shape[1]), np.zeros(t.shape[1])
            self.ff, self.ft = np.zeros((f.shape[1], f.shape[1])), np.zeros((f.shape[1], t.shape[1]))
        self.n += len(f)
        self.sf += f.sum(0)
        self.st += t.sum(0)
        self.ff += f.T @ f
        self.ft += f.T @ t
        self.tt += float((t * t).sum())

    def solve(self, ridge: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(weights, bias, residual norm / target norm) of the ridge fit with an unpenalised bias."""
        mf, mt = self.sf / self.n, self.st / self.n
        cff = self.ff - self.n * np.outer(mf, mf)
        cft = self.ft - self.n * np.outer(mf, mt)
        gram = cff.copy()
        gram[np.diag_indices_from(gram)] += ridge * max(np.trace(cff) / len(cff), 1e-12)
        w = np.linalg.solve(gram, cft)
        ctt = self.tt - self.n * float(mt @ mt)
        residual = max(ctt - 2 * float((w * cft).sum()) + float((w * (cff @ w)).sum()), 0.0)
        return w, mt - mf @ w, float(np.sqrt(residual / max(self.tt, 1e-30)))


def _rows(a) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(-1, a.shape[-1])


def _pre_activation(model: keras.Model, name: str):
    """A function of the net's input giving a layer's output before its activation (the softmax
    head's logits); built once per layer, called per batch."""
    layer = model.get_layer(name)
    if layer.get_config().get("activation", "linear") == "linear":
        output = keras.Model(model.input, layer.output)
        return lambda x: np.asarray(output(x, training=False))
    kernel, bias = layer.get_weights()      # a softmax head: Dense or 1x1 conv
    inputs = keras.Model(model.input, layer.input)
    return lambda x: np.asarray(inputs(x, training=False)) @ kernel.reshape(-1, kernel.shape[-1]) + bias


def _unpermute_rows(kernel: np.ndarray, hwc: tuple[int, int, int]) -> np.ndarray:
    """The teacher flattens (W, H, C) (its Permute layer, from Caffe); the student flattens (H, W, C)."""
    h, w, c = hwc
    return kernel.reshape(w, h, c, -1).transpose(1, 0, 2, 3).reshape(h * w * c, -1)
