"""Distillation losses on embeddings (TensorFlow).

* cosine: 1 - cos(student, teacher) — the direction is all a cosine-threshold matcher reads;
* l2: squared distance between the *raw* student output and the unit teacher target, which pins the
  output norm near 1 (keeps int8 quantisation ranges tight) and adds a gradient cosine lacks;
* relational: the batch's student cosine-similarity matrix should equal the teacher's (Park et al.
  2019, RKD): it transfers the geometry between faces, i.e. the decisions a gallery makes;
* triplet (optional, labelled data only): FaceNet's semi-hard triplet loss on the student.
"""
from __future__ import annotations

import tensorflow as tf


def unit(x: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(x, axis=-1)


def cosine_loss(raw: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(1.0 - tf.reduce_sum(unit(raw) * target, axis=-1))


def l2_loss(raw: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reduce_sum(tf.square(raw - target), axis=-1))


def relational_loss(raw: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    s = unit(raw)
    gram_s = tf.matmul(s, s, transpose_b=True)
    gram_t = tf.matmul(target, target, transpose_b=True)
    n = tf.cast(tf.shape(s)[0], tf.float32)
    off = 1.0 - tf.eye(tf.shape(s)[0])
    return tf.reduce_sum(tf.square(gram_s - gram_t) * off) / tf.maximum(n * (n - 1.0), 1.0)


def semi_hard_triplet_loss(raw: tf.Tensor, labels: tf.Tensor, margin: float = 0.2) -> tf.Tensor:
    """Schroff et al. 2015: for each anchor-positive pair, the closest negative that is still farther
    than the positive (semi-hard); if none, the farthest negative. Squared distances of unit vectors.
    Labels < 0 mean "unknown identity" and are only ever used as negatives of others."""
    e = unit(raw)
    d = tf.maximum(2.0 - 2.0 * tf.matmul(e, e, transpose_b=True), 0.0)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :]) & (labels[:, None] >= 0)
    n = tf.shape(e)[0]
    pos_mask = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
    neg_mask = tf.logical_not(same) & tf.logical_not(tf.eye(n, dtype=tf.bool))
    # d_ap: (n, n) anchor-positive; for each (a, p): semi-hard negative distance
    d_ap = d[:, :, None]                     # (a, p, 1)
    d_an = d[:, None, :]                     # (a, 1, n)
    neg = neg_mask[:, None, :]
    semi = neg & (d_an > d_ap)
    big = tf.reduce_max(d) + 1.0
    semi_min = tf.reduce_min(tf.where(semi, d_an, big), axis=2)          # (a, p)
    hardest = tf.reduce_max(tf.where(neg_mask, d, -1.0), axis=1)[:, None]  # fallback per anchor
    d_neg = tf.where(semi_min < big, semi_min, tf.broadcast_to(hardest, tf.shape(semi_min)))
    losses = tf.maximum(d - d_neg + margin, 0.0)
    pos = tf.cast(pos_mask, tf.float32)
    return tf.reduce_sum(losses * pos) / tf.maximum(tf.reduce_sum(pos), 1.0)


def distill_losses(raw: tf.Tensor, target: tf.Tensor, labels: tf.Tensor, weights: dict[str, float],
                   margin: float = 0.2) -> dict[str, tf.Tensor]:
    """Each weighted term and their sum ('total'); a zero weight skips the term's computation."""
    terms = {"cosine": cosine_loss, "l2": l2_loss, "relational": relational_loss}
    out = {name: fn(raw, target) for name, fn in terms.items() if weights.get(name, 0.0)}
    if weights.get("triplet", 0.0):
        out["triplet"] = semi_hard_triplet_loss(raw, labels, margin)
    out["total"] = tf.add_n([weights[k] * v for k, v in out.items()])
    return out
