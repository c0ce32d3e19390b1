"""`facegate distill head`: refitting a trained student's linear head on its own features."""
from __future__ import annotations

import numpy as np
import pytest

from facegate.edge.errors import ModelError

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _student(seed: int = 0):
    """A tiny backbone with the peer student's head (`embedding_conv` on a GDConv-like map)."""
    from facegate.convert.students.peer import build_peer_student
    inp = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(16, 8, strides=8, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(14, padding="valid", name="gd")(x)
    student = build_peer_student(keras.Model(inp, x), embedding_dim=4, feature_layer="gd")
    rng = np.random.default_rng(seed)
    student.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in student.get_weights()])
    return student


def _targets(student, n: int, seed: int, labels=None, unit: bool = False):
    """Faces whose teacher targets are an exact affine function of the student's features (scaled
    to unit length with `unit`, as real targets are, for measuring cosines)."""
    from facegate.convert.distill.head import head_features
    from facegate.convert.distill.targets import CANVAS, TargetSet
    rng = np.random.default_rng(seed)
    canvases = rng.integers(0, 256, (n, CANVAS, CANVAS, 3), dtype=np.uint8)
    canvases = ((canvases.astype(np.uint16) + canvases[:, :, ::-1]) // 2).astype(np.uint8)  # mirror == clean
    data = TargetSet(np.array([f"k{seed}-{i}" for i in range(n)]),
                     np.array(labels if labels is not None else [""] * n), canvases, np.zeros((n, 4), np.float32), "t")
    feats = head_features(student, data.centre_crops(), "mean127.5_div128")
    w = np.random.default_rng(99).normal(size=(feats.shape[1], 4))
    data.targets = (feats @ w + 0.1).astype(np.float32)
    if unit:
        data.targets /= np.linalg.norm(data.targets, axis=1, keepdims=True)
    return data


def test_reference_sees_every_view_and_its_crops():
    """The relational reference is asked for each view's embedding from that view's crops."""
    from facegate.convert.distill.head import Refinement, fit_head
    student = _student()
    data = _targets(student, 24, seed=1)
    calls = []

    def reference(crops, features):
        calls.append((crops.shape, features.shape))
        return features[:, :3]

    fit = fit_head(student, data, "mean127.5_div128", views=3, progress=False, reference=reference,
                   refinement=Refinement(steps=5, batch=8))
    assert calls == [((24, 112, 112, 3), (24, 16))] * 3
    assert fit.steps == 5 and fit.samples == 72


def test_refit_restores_a_broken_head_and_writes_a_card(tmp_path):
    """A student whose head was scrambled is refitted from its features: held-out cosine to the
    teacher goes from poor to ~1, the file on disk carries the new head and a card that says so."""
    from facegate.convert.distill.embedder import save_student_file
    from facegate.convert.distill.refit import RefitConfig, refit_student_head
    from facegate.edge.registry import get_embedder
    student = _student()
    train = _targets(student, 60, seed=2)
    val = _targets(student, 20, seed=3, labels=[f"p{i // 4}" for i in range(20)], unit=True)
    src = tmp_path / "src" / "student.keras"
    save_student_file(student, src, metrics={}, config={}, student={"embedding_dim": 4}, teacher="t", source="test")
    cfg = RefitConfig(model=str(src), out=tmp_path / "out", views=2, ridge=1e-9, relational=0.0, progress=False)
    r = refit_student_head(cfg, train, val)
    assert r["before"]["val_cosine_mean"] < 0.9
    assert r["after"]["val_cosine_mean"] > 0.999
    refitted = get_embedder(str(tmp_path / "out" / "student.keras"))
    assert refitted.card.accuracy["student"]["head_refit"]["samples"] == 120
    assert refitted.card.accuracy["distillation"]["after"] == r["after"]
    e = refitted.embed(val.centre_crops())
    assert float(np.mean(np.sum(e * val.targets, axis=1))) > 0.999


def test_refit_refuses_a_student_without_the_linear_head(tmp_path):
    from facegate.convert.distill.embedder import save_student_file
    from facegate.convert.distill.refit import RefitConfig, refit_student_head
    inp = keras.Input((112, 112, 3))
    out = keras.layers.Flatten()(keras.layers.Conv2D(4, 112, name="other")(inp))
    path = tmp_path / "student.keras"
    save_student_file(keras.Model(inp, out), path, metrics={}, config={}, student={"embedding_dim": 4}, teacher="t",
                      source="test")
    train = _targets(_student(), 8, seed=4)
    with pytest.raises(ModelError, match="embedding_conv"):
        refit_student_head(RefitConfig(model=str(path), out=tmp_path / "out", progress=False), train, None)


def test_refit_refuses_a_non_keras_file_before_reading_any_photo(tmp_path):
    """An installer pointing at an exported file hears about the model, not about missing photos."""
    from facegate.convert.distill.refit import RefitConfig, refit_head
    with pytest.raises(ModelError, match="not a Keras student"):
        refit_head(RefitConfig(model="edge/models/facenet-student/facenet-student_fp16.tflite", out=tmp_path / "o",
                               progress=False), data_folders=[tmp_path / "no-such-folder"])


def test_a_per_face_reference_is_matched_by_the_refinement():
    """An ensemble's reference is one vector per face for all its views: the refined head's similarities
    move towards the mix of the teacher's and the reference's, and a wrong-length reference is refused."""
    from facegate.convert.distill.head import Refinement, fit_head, head_features
    student = _student()
    data = _targets(student, 48, seed=2, unit=True)
    feats = head_features(student, data.centre_crops(), "mean127.5_div128")   # a reference the head can reach
    reference = (feats @ np.random.default_rng(5).normal(size=(16, 4))).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    wanted = 0.5 * reference @ reference.T + 0.5 * data.targets @ data.targets.T

    def gap(model):
        e = model(((data.centre_crops().astype(np.float32) - 127.5) / 128.0), training=False).numpy()
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return float(np.mean((e @ e.T - wanted) ** 2))

    fit_head(student, data, "mean127.5_div128", views=2, progress=False, refinement=Refinement(steps=0))
    ridge_gap = gap(student)
    fit = fit_head(student, data, "mean127.5_div128", views=2, progress=False, face_reference=reference,
                   refinement=Refinement(steps=400, batch=48, lr=1e-2, peer_mix=0.5))
    assert fit.steps == 400 and fit.peer_mix == 0.5
    assert gap(student) < 0.7 * ridge_gap
    with pytest.raises(ValueError, match="face_reference has 3 rows for 48 faces"):
        fit_head(student, data, "mean127.5_div128", views=1, progress=False, face_reference=reference[:3])


def test_the_fitted_head_has_unit_output_length_and_the_same_directions():
    """The training's L2 term reads raw lengths: a fitted head is scaled to unit mean length, and rescaling a
    started student's head changes no unit output."""
    from facegate.convert.distill.head import Refinement, fit_head, rescale_head
    student = _student()
    data = _targets(student, 32, seed=3)
    data.targets *= 5.0                                     # a head that fits these lands far from unit length
    crops = data.centre_crops()
    fit = fit_head(student, data, "mean127.5_div128", views=1, progress=False, refinement=Refinement(steps=0))
    raw = student(((crops.astype(np.float32) - 127.5) / 128.0), training=False).numpy()
    assert fit.output_norm > 2 and np.linalg.norm(raw, axis=1).mean() == pytest.approx(1.0, rel=1e-3)
    conv = student.get_layer("embedding_conv")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * 4.8, bias * 4.8])
    before = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert rescale_head(student, crops, "mean127.5_div128") == pytest.approx(4.8, rel=1e-3)
    after = student(((crops.astype(np.float32) - 127.5) / 128.0), training=False).numpy()
    assert np.linalg.norm(after, axis=1).mean() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(after / np.linalg.norm(after, axis=1, keepdims=True), before, atol=1e-5)
