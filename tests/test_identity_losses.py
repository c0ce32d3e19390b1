"""The identity losses of the distillation trainers (contrastive, center, ArcFace; triplet beside them):
each one decreases when a small projection of real faces is trained on it alone, and the trained
projection separates the identities (genuine cosines rise above impostor cosines) on the same faces."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facegate.convert.distill.losses import (  # noqa: E402
    IdentityTerms,
    contrastive_loss,
    distill_losses,
    semi_hard_triplet_loss,
)
from facegate.edge.images import load_rgb  # noqa: E402


@pytest.fixture(scope="module")
def faces(lfw_dir):
    """16 real faces, 4 each of 4 people, as 24x24 grey pixel vectors (centre of the LFW framing)."""
    import cv2
    xs, ys = [], []
    for label, name in enumerate(("Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo")):
        for path in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:4]:
            grey = cv2.cvtColor(load_rgb(path)[70:180, 70:180], cv2.COLOR_RGB2GRAY)
            v = cv2.resize(grey, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
            xs.append((v - v.mean()) / (v.std() + 1e-6))
            ys.append(label)
    return np.stack(xs), np.array(ys, np.int32)


def separation(e: np.ndarray, y: np.ndarray) -> float:
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = e @ e.T
    iu = np.triu_indices(len(y), 1)
    same = (y[:, None] == y[None, :])[iu]
    return float(s[iu][same].mean() - s[iu][~same].mean())


def train(faces, weights: dict, steps: int = 150):
    """A 16-D linear projection of the faces trained on `weights` alone; (losses per step, separation
    before, after, the projected faces)."""
    x, y = faces
    rng = np.random.default_rng(0)
    proj = tf.Variable(rng.normal(scale=0.05, size=(x.shape[1], 16)).astype(np.float32))
    identity = IdentityTerms(4, 16, seed=0)
    variables = [proj] + ([identity.arc_weights] if weights.get("arcface") else [])
    opt = tf.keras.optimizers.Adam(0.01)
    xt, yt = tf.constant(x), tf.constant(y)
    target = tf.zeros((len(y), 16))                   # the distillation terms are off
    before = separation(x @ proj.numpy(), y)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            parts = distill_losses(tf.matmul(xt, proj), target, yt, weights, identity=identity)
        grads = tape.gradient(parts["total"], variables)
        opt.apply_gradients(zip(grads, variables))
        losses.append({k: float(v) for k, v in parts.items()})
    assert set(parts) == set(weights) | {"total"}
    return losses, before, separation(x @ proj.numpy(), y), x @ proj.numpy()


@pytest.mark.parametrize("name", ["triplet", "contrastive", "arcface"])
def test_each_identity_loss_decreases_and_separates_real_faces(faces, name):
    losses, before, after, _ = train(faces, {name: 1.0})
    first, last = np.mean([r[name] for r in losses[:10]]), np.mean([r[name] for r in losses[-10:]])
    assert last < 0.5 * first, (name, first, last)
    assert after > before + 0.3 and after > 0.4, (name, before, after)


def spread(e: np.ndarray, y: np.ndarray) -> float:
    """Mean distance of unit embeddings to their identity's mean, over the mean distance between means."""
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    means = np.stack([e[y == k].mean(0) for k in np.unique(y)])
    within = np.mean([np.linalg.norm(e[i] - means[y[i]]) for i in range(len(y))])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]])
    return float(within / between)


def test_center_loss_decreases_and_makes_identities_compact_beside_softmax(faces):
    """Center loss is used beside a classifier (Wen et al.): alone, every face collapsing onto one point
    is a minimum. Beside ArcFace it must fall, and the identities must end up more compact relative to
    their distances apart than with ArcFace alone, and separated."""
    _, y = faces
    losses, before, after, e = train(faces, {"arcface": 1.0, "center": 1.0})
    first, last = np.mean([r["center"] for r in losses[:10]]), np.mean([r["center"] for r in losses[-10:]])
    assert last < 0.5 * first, (first, last)
    assert after > before + 0.3 and after > 0.4, (before, after)
    *_, e_softmax = train(faces, {"arcface": 1.0})
    assert spread(e, y) < 0.8 * spread(e_softmax, y), (spread(e, y), spread(e_softmax, y))


def test_contrastive_loss_by_hand():
    e = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    y = tf.constant([0, 0, 1, -1])                    # the last face is unlabelled: no pair counts it
    # positives: (0,1) distance 0; negatives: (0,2), (1,2) distance sqrt(2) > margin 0.8 -> 0
    assert float(contrastive_loss(e, y, 0.8)) == pytest.approx(0.0, abs=1e-5)
    # margin 2: each negative pays (2 - sqrt 2)^2
    assert float(contrastive_loss(e, y, 2.0)) == pytest.approx((2 - np.sqrt(2)) ** 2, rel=1e-4)
    e2 = tf.constant([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # positive (0,1) squared distance 2; negatives (0,2), (1,2) at distance 2 and sqrt 2, margin 0.8: none
    assert float(contrastive_loss(e2, tf.constant([0, 0, 1]), 0.8)) == pytest.approx(2.0, rel=1e-4)


def test_center_loss_moves_centres_towards_their_faces():
    terms = IdentityTerms(2, 2, center_alpha=0.5)
    e = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = tf.constant([0, 0, 1, -1])
    first = float(terms.center_loss(e, y))            # centres start at 0: 0.5 * |e|^2 = 0.5 each
    assert first == pytest.approx(0.5)
    # identity 0: two faces at (1,0): centre moves 0.5 * 2/(1+2) of the way; identity 1: 0.5 * 1/2
    np.testing.assert_allclose(terms.centers.numpy(), [[1 / 3, 0.0], [0.0, 0.25]], atol=1e-6)
    for _ in range(30):
        last = float(terms.center_loss(e, y))
    assert last < 0.01


def test_arcface_margin_makes_the_true_identity_harder():
    terms = IdentityTerms(3, 4, arc_scale=4.0, arc_margin=0.5)      # a small scale keeps both losses above 0
    terms.arc_weights.assign(tf.eye(3, 4))
    e = tf.constant([[1.0, 0.2, 0.0, 0.0]])
    with_margin = float(terms.arcface_loss(e, tf.constant([0])))
    terms.arc_margin = 0.0
    without = float(terms.arcface_loss(e, tf.constant([0])))
    assert with_margin > without > 0
    assert float(terms.arcface_loss(e, tf.constant([-1]))) == 0.0   # unlabelled faces are not classified


def test_triplet_is_unchanged_by_unlabelled_faces():
    e = tf.constant([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = tf.constant([0, 0, 1])
    base = float(semi_hard_triplet_loss(e, y))
    assert base >= 0
