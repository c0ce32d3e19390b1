"""Distillation losses on embeddings (TensorFlow).

* cosine: 1 - cos(student, teacher) — the direction is all a cosine-threshold matcher reads;
* l2: squared distance between the *raw* student output and the unit teacher target, which pins the
  output norm near 1 (keeps int8 quantisation ranges tight) and adds a gradient cosine lacks;
* relational: the batch's student cosine-similarity matrix should equal the teacher's (Park et al.
  2019, RKD): it transfers the geometry between faces, i.e. the decisions a gallery makes;
* triplet (optional, labelled data only): FaceNet's semi-hard triplet loss on the student;
* contrastive (labelled): Hadsell et al. 2006 on every pair of the batch, positives pulled together and
  negatives pushed past a margin, the two halves weighted equally (a batch has far more negatives);
* center (labelled): Wen et al. 2016, each face pulled to its identity's centre, centres moved towards
  their faces by a running average (alpha) instead of by the optimiser;
* arcface (labelled): Deng et al. 2019, softmax over identities on cos(theta + m) * s, with one learned
  unit weight vector per identity.

The identity terms (contrastive, center, arcface) read only labelled faces (label >= 0); unlabelled faces
count for the distillation terms alone. Center and ArcFace keep state per identity (:class:`IdentityTerms`),
saved in the checkpoints with the model.
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


def contrastive_loss(raw: tf.Tensor, labels: tf.Tensor, margin: float = 0.8) -> tf.Tensor:
    """Mean squared distance of same-identity pairs plus mean squared shortfall of different-identity
    pairs below `margin` (Euclidean distance of unit vectors, 0..2), each half averaged on its own."""
    e = unit(raw)
    labels = tf.reshape(labels, [-1])
    n = tf.shape(e)[0]
    known = labels >= 0
    both = known[:, None] & known[None, :] & tf.logical_not(tf.eye(n, dtype=tf.bool))
    same = tf.equal(labels[:, None], labels[None, :]) & both
    diff = tf.logical_not(tf.equal(labels[:, None], labels[None, :])) & both
    d2 = tf.maximum(2.0 - 2.0 * tf.matmul(e, e, transpose_b=True), 0.0)
    d = tf.sqrt(d2 + 1e-12)
    pos, neg = tf.cast(same, tf.float32), tf.cast(diff, tf.float32)
    pull = tf.reduce_sum(d2 * pos) / tf.maximum(tf.reduce_sum(pos), 1.0)
    push = tf.reduce_sum(tf.square(tf.maximum(margin - d, 0.0)) * neg) / tf.maximum(tf.reduce_sum(neg), 1.0)
    return pull + push


class IdentityTerms(tf.Module):
    """The per-identity state of the center and ArcFace losses: identity centres (updated by a running
    average, not trained) and ArcFace's class weights (trained with the student)."""

    def __init__(self, identities: int, dim: int, center_alpha: float = 0.5, arc_scale: float = 32.0,
                 arc_margin: float = 0.5, seed: int = 0) -> None:
        super().__init__(name="identity_terms")
        self.identities = max(1, int(identities))
        self.center_alpha, self.arc_scale, self.arc_margin = center_alpha, arc_scale, arc_margin
        self.centers = tf.Variable(tf.zeros((self.identities, dim)), trainable=False, name="centers")
        init = tf.random.stateless_normal((self.identities, dim), seed=(seed, 1)) * 0.01
        self.arc_weights = tf.Variable(init, trainable=True, name="arc_weights")

    def center_loss(self, raw: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Half the mean squared distance of labelled unit embeddings to their (pre-update) centres; the
        centres of the batch's identities then move alpha of the way to their faces' mean."""
        e = unit(raw)
        labels = tf.reshape(labels, [-1])
        keep = tf.where(labels >= 0)[:, 0]
        e, y = tf.gather(e, keep), tf.gather(labels, keep)
        centers = tf.gather(self.centers, y)
        loss = 0.5 * tf.reduce_sum(tf.square(e - centers)) / tf.maximum(tf.cast(tf.shape(e)[0], tf.float32), 1.0)
        diff = centers - tf.stop_gradient(e)
        # per identity: sum of differences / (1 + count), as in Wen et al.
        uniq, idx, counts = tf.unique_with_counts(y)
        sums = tf.math.unsorted_segment_sum(diff, idx, tf.shape(uniq)[0])
        step = self.center_alpha * sums / (1.0 + tf.cast(counts, tf.float32))[:, None]
        self.centers.scatter_sub(tf.IndexedSlices(step, uniq))
        return loss

    def arcface_loss(self, raw: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Cross-entropy over identities with the additive angular margin on the true identity's angle."""
        e = unit(raw)
        labels = tf.reshape(labels, [-1])
        keep = tf.where(labels >= 0)[:, 0]
        e, y = tf.gather(e, keep), tf.gather(labels, keep)
        cos = tf.clip_by_value(tf.matmul(e, unit(self.arc_weights), transpose_b=True), -1.0 + 1e-6, 1.0 - 1e-6)
        theta = tf.acos(cos)
        # past pi - m the margin would make the target angle wrap round: fall back to CosFace's cos - m sin m m
        target = tf.where(theta + self.arc_margin < 3.14159265,
                          tf.cos(theta + self.arc_margin), cos - self.arc_margin * tf.sin(self.arc_margin))
        onehot = tf.one_hot(y, self.identities, dtype=tf.float32)
        logits = self.arc_scale * (onehot * target + (1.0 - onehot) * cos)
        ce = tf.nn.softmax_cross_entropy_with_logits(onehot, logits)
        return tf.reduce_sum(ce) / tf.maximum(tf.cast(tf.shape(e)[0], tf.float32), 1.0)


IDENTITY_LOSSES = ("triplet", "contrastive", "center", "arcface")


def distill_losses(raw: tf.Tensor, target: tf.Tensor, labels: tf.Tensor, weights: dict[str, float],
                   margin: float = 0.2, identity: IdentityTerms | None = None,
                   contrastive_margin: float = 0.8, relational_target: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """Each weighted term and their sum ('total'); a zero weight skips the term's computation.
    `identity` holds the state of the center and arcface terms (needed when they have a weight).
    `relational_target` (default: `target`) gives the similarities the relational term matches, e.g. an
    ensemble's (facegate.convert.distill.ensemble.ensemble_vectors)."""
    terms = {"cosine": cosine_loss, "l2": l2_loss}
    out = {name: fn(raw, target) for name, fn in terms.items() if weights.get(name, 0.0)}
    if weights.get("relational", 0.0):
        out["relational"] = relational_loss(raw, target if relational_target is None else relational_target)
    if weights.get("triplet", 0.0):
        out["triplet"] = semi_hard_triplet_loss(raw, labels, margin)
    if weights.get("contrastive", 0.0):
        out["contrastive"] = contrastive_loss(raw, labels, contrastive_margin)
    for name in ("center", "arcface"):
        if weights.get(name, 0.0):
            if identity is None:
                raise ValueError(f"the {name} loss needs the identities' state (IdentityTerms)")
            out[name] = getattr(identity, f"{name}_loss")(raw, labels)
    out["total"] = tf.add_n([weights[k] * v for k, v in out.items()])
    return out
