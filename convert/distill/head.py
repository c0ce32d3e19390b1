"""Closed-form start for a pretrained student: fit its new embedding head to the teacher's targets.

A pretrained backbone (the MobileFaceNet peer) already separates identities; what it lacks is the
teacher's coordinate system. The head is linear (a 1x1 conv with bias), so the least-squares
map from the backbone's features to the teacher's unit targets is one ridge regression over a
few clean and augmented views of every training face: seconds of algebra instead of epochs of
SGD, and a far better starting point than a random head.

Least squares to the teacher alone throws away some of what the backbone knew: on held-out
identities the peer's own embedding separated people better (pair accuracy 97.7%) than the
teacher (96.6%) or the ridge head (97.1%). So a short refinement follows, on the same cached
features: keep the cosine to the teacher's targets, and make the head's pairwise similarities
inside each batch match a mix of the teacher's and the peer's (a relational term with two
teachers). It costs the teacher-space cosine almost nothing and gives back the peer's separation.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from facegate.convert.distill.augment import AugmentConfig, augment_batch
from facegate.convert.distill.targets import TargetSet
from facegate.edge.face.embed import normalise

log = logging.getLogger(__name__)

HEAD_CONV = "embedding_conv"


@dataclass
class HeadFit:
    """What the fit did, for the run log and the card."""

    views: int
    samples: int
    ridge: float
    train_cosine: float
    relational_weight: float = 0.0
    peer_mix: float = 0.0
    steps: int = 0
    refined_train_cosine: float | None = None
    output_norm: float = 1.0     # mean output length before the head was scaled to unit length

    def to_dict(self) -> dict:
        d = {"views": self.views, "samples": self.samples, "ridge": self.ridge,
             "train_cosine": round(self.train_cosine, 4), "output_norm_rescaled_from": round(self.output_norm, 3)}
        if self.steps:
            d.update({"relational_weight": self.relational_weight, "peer_mix": self.peer_mix, "steps": self.steps,
                      "refined_train_cosine": round(float(self.refined_train_cosine), 4)})
        return d


@dataclass(frozen=True)
class Refinement:
    """The relational refinement after the ridge fit (weight 0 or steps 0: ridge only)."""

    weight: float = 10.0       # relational term against the cosine term
    peer_mix: float = 0.5      # target similarities: peer_mix * peer's + (1 - peer_mix) * teacher's
    steps: int = 3000
    batch: int = 256
    lr: float = 1e-4


def head_features(model, crops: np.ndarray, normalisation: str, batch: int = 128) -> np.ndarray:
    """The backbone's features feeding the head (the input of `embedding_conv`), one row per crop."""
    import keras
    conv = model.get_layer(HEAD_CONV)
    feature_model = keras.Model(model.input, conv.input)
    rows = [np.asarray(feature_model(normalise(crops[i:i + batch], normalisation), training=False), np.float64)
            for i in range(0, len(crops), batch)]
    return np.concatenate(rows).reshape(len(crops), -1)


#: the reference network's own embedding of a batch of views: (uint8 crops, the student's head features
#: of those crops) -> embeddings. A student whose head reads the peer's features maps those features
#: (`peer_reference`); any other student runs the peer on the crops (`peer_crop_reference`).
Reference = Callable[[np.ndarray, np.ndarray], np.ndarray]


def fit_head(model, data: TargetSet, normalisation: str, views: int = 4, ridge: float = 1e-2, seed: int = 0,
             progress: bool = True, reference: Reference | None = None,
             refinement: Refinement = Refinement(), face_reference: np.ndarray | None = None) -> HeadFit:
    """Set the head so that head(features) ~= the teacher's targets, in place.

    View 0 is every face's clean centre crop, view 1 its mirror image (the targets are
    flip-averaged, so both map to the same target), further views are door-camera augmentations.
    `ridge` is relative to the mean feature energy, so it means the same for any backbone.
    `reference` gives the pretrained network's own embedding of each view; with it the ridge head is
    refined (`refinement`) to keep the reference's similarity structure too. `face_reference` instead
    gives one reference vector per face, the same for all its views (an ensemble's, which is
    flip-averaged per face like the teacher's targets; facegate.convert.distill.ensemble)."""
    if views < 1:
        raise ValueError("fit_head needs at least one view of each face")
    if face_reference is not None and len(face_reference) != len(data):
        raise ValueError(f"face_reference has {len(face_reference)} rows for {len(data)} faces")
    rng = np.random.default_rng(seed)
    refine = (reference is not None or face_reference is not None) and refinement.steps > 0 and refinement.weight > 0
    feats, targets, refs = [], [], []
    aug = AugmentConfig()
    for v in tqdm(range(views), desc="head views", unit="view", disable=not progress):
        if v == 0:
            crops = data.centre_crops()
        elif v == 1:
            crops = data.centre_crops()[:, :, ::-1]
        else:
            crops = augment_batch(data.canvases, rng, aug)
        crops = np.ascontiguousarray(crops)
        feats.append(head_features(model, crops, normalisation))
        targets.append(data.targets.astype(np.float64))
        if refine:
            refs.append(np.asarray(face_reference if face_reference is not None else reference(crops, feats[-1]),
                                   np.float64))
    x, y = np.concatenate(feats), np.concatenate(targets)
    w, bias = ridge_map(x, y, ridge)
    fit = HeadFit(views=views, samples=len(x), ridge=ridge, train_cosine=_mean_cosine(x @ w + bias, y))
    if refine:
        w, bias = refine_head(x, y, np.concatenate(refs), w, bias, refinement, seed, progress)
        fit.relational_weight, fit.peer_mix, fit.steps = refinement.weight, refinement.peer_mix, refinement.steps
        fit.refined_train_cosine = _mean_cosine(x @ w + bias, y)
    fit.output_norm = float(np.mean(np.linalg.norm(x @ w + bias, axis=1)))
    _set_head(model, w / fit.output_norm, bias / fit.output_norm)
    log.info("embedding head fitted: %s", fit.to_dict())
    return fit


def ridge_map(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """The affine least-squares map x @ w + bias ~= y, with a ridge relative to the mean feature
    energy (so one value means the same for any backbone). w: (features, outputs)."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc = x - mean_x
    gram = xc.T @ xc
    lam = ridge * np.trace(gram) / gram.shape[0]
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ (y - mean_y))
    return w, mean_y - mean_x @ w


def refine_head(x: np.ndarray, targets: np.ndarray, reference: np.ndarray, w: np.ndarray, bias: np.ndarray,
                cfg: Refinement, seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Adam on the linear head over cached features: (1 - cosine to the teacher) + weight * mean
    squared difference between the head's in-batch cosine matrix and the mix of the teacher's and
    the reference's. Returns the new (w, bias)."""
    import tensorflow as tf

    unit = lambda a: (a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)).astype(np.float32)  # noqa: E731
    t_all, r_all, x_all = unit(targets), unit(reference), x.astype(np.float32)
    wv, bv = tf.Variable(w.astype(np.float32)), tf.Variable(bias.astype(np.float32))
    opt = tf.keras.optimizers.Adam(cfg.lr)
    rng = np.random.default_rng(seed + 1)

    @tf.function
    def step(xb, tb, rb):
        with tf.GradientTape() as tape:
            e = tf.math.l2_normalize(tf.matmul(xb, wv) + bv, axis=1)
            cosine = tf.reduce_mean(1.0 - tf.reduce_sum(e * tb, 1))
            wanted = cfg.peer_mix * tf.matmul(rb, rb, transpose_b=True) + \
                (1.0 - cfg.peer_mix) * tf.matmul(tb, tb, transpose_b=True)
            relational = tf.reduce_mean(tf.square(tf.matmul(e, e, transpose_b=True) - wanted))
            loss = cosine + cfg.weight * relational
        grads = tape.gradient(loss, [wv, bv])
        opt.apply_gradients(zip(grads, [wv, bv]))
        return loss

    batch = min(cfg.batch, len(x_all))
    for _ in tqdm(range(cfg.steps), desc="head refinement", unit="step", disable=not progress):
        idx = rng.choice(len(x_all), batch, replace=False)
        step(x_all[idx], t_all[idx], r_all[idx])
    return wv.numpy().astype(np.float64), bv.numpy().astype(np.float64)


def rescale_head(model, crops: np.ndarray, normalisation: str) -> float:
    """Scale the head so the raw outputs of these crops have mean length 1; returns the length before.

    A cosine-matched embedding does not care, but the training's L2 term does: the relational
    refinement leaves raw outputs ~4.8 long, and an L2 pull of that size towards unit targets
    outweighs every other term and drags a pretrained backbone away from the teacher within one
    epoch. Dividing the linear head's weights and bias by the mean length changes no unit output."""
    conv = model.get_layer(HEAD_CONV)
    weights = conv.get_weights()           # kernel, and bias where the head has one
    raw = np.concatenate([np.asarray(model(normalise(crops[i:i + 128], normalisation), training=False))
                          for i in range(0, len(crops), 128)])
    norm = float(np.mean(np.linalg.norm(raw, axis=1)))
    conv.set_weights([w / norm for w in weights])
    return norm


def unit_length_start(model, data, normalisation: str, faces: int = 512) -> float | None:
    """What a started student gets before training (`distill embedder --init`, `distill pack --init`): a
    linear head scaled so `faces` of the training faces' raw outputs have mean length 1 (rescale_head);
    returns the length before, or None for a student without that head (nothing to scale)."""
    if HEAD_CONV not in {layer.name for layer in model.layers}:
        return None
    norm = rescale_head(model, data.centre_crops()[:faces], normalisation)
    log.info("head scaled to unit output length (was %.3f)", norm)
    return norm


def _mean_cosine(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sum(pred * y, 1) / np.maximum(np.linalg.norm(pred, axis=1) * np.linalg.norm(y, axis=1),
                                                          1e-12)))


def _set_head(model, w: np.ndarray, bias: np.ndarray) -> None:
    """Write `features @ w + bias` into the head's 1x1 conv."""
    conv = model.get_layer(HEAD_CONV)
    if not conv.use_bias:
        raise ValueError(f"{HEAD_CONV} has no bias: build the student with build_peer_student")
    conv.set_weights([w.reshape(1, 1, *w.shape).astype(np.float32), bias.astype(np.float32)])


def peer_crop_reference(normalisation: str, batch: int = 128) -> Reference:
    """The peer's own embedding computed from the crops: one extra forward pass of the pretrained
    MobileFaceNet per view. For students whose head reads features of their own (a compressed
    student), so their head can be refined towards the same teacher/peer similarities as the
    full-width student's."""
    from facegate.convert.students.peer import PeerStudentConfig

    config = PeerStudentConfig()
    backbone, feature_map = config.build(), config.reference()
    return lambda crops, _features: feature_map(head_features(backbone, crops, normalisation, batch))
