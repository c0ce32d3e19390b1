"""Relational targets from an ensemble of teachers (FaceNet, the MobileFaceNet peer, dlib's ResNet)."""
from __future__ import annotations

import numpy as np
import pytest

from facegate.convert.distill.ensemble import centred, ensemble_vectors, parse_ensemble, relational_reference

tf = pytest.importorskip("tensorflow")


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_members_are_parsed_and_mistakes_refused():
    assert parse_ensemble("teacher, peer,dlib") == ("teacher", "peer", "dlib")
    assert parse_ensemble(None) == () and parse_ensemble("") == ()
    with pytest.raises(ValueError, match="members are teacher, peer, dlib; not arcface"):
        parse_ensemble("teacher,arcface")
    with pytest.raises(ValueError, match="twice"):
        parse_ensemble("peer,peer")


def test_the_cli_refuses_an_unknown_member_without_a_traceback(capsys):
    from facegate.apps.cli import main
    code = main(["distill", "embedder", "--ensemble", "teacher,insightface", "--out", "/nonexistent/run"])
    err = capsys.readouterr().err
    assert code == 2 and "not insightface" in err and "Traceback" not in err


def test_ensemble_dot_products_are_the_members_mean_cosine():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(30, 128)), rng.normal(size=(30, 192)), rng.normal(size=(30, 128)) * 7
    z = ensemble_vectors([a, b, c])
    mean = (_unit(a) @ _unit(a).T + _unit(b) @ _unit(b).T + _unit(c) @ _unit(c).T) / 3
    np.testing.assert_allclose(z @ z.T, mean, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_the_head_reference_leaves_the_teacher_its_share():
    rng = np.random.default_rng(1)
    members = {"teacher": _unit(rng.normal(size=(10, 8))), "peer": rng.normal(size=(10, 6)),
               "dlib": rng.normal(size=(10, 5))}
    reference, share = relational_reference(members)
    assert share == pytest.approx(2 / 3) and reference.shape == (10, 11)
    # the head refinement's target: share * reference gram + (1 - share) * teacher gram == mean of all three
    wanted = share * reference @ reference.T + (1 - share) * members["teacher"] @ members["teacher"].T
    z = ensemble_vectors(list(members.values()))
    np.testing.assert_allclose(wanted, z @ z.T, atol=1e-5)
    alone, share = relational_reference({"teacher": members["teacher"]})
    assert share == 0 and np.allclose(alone, members["teacher"])


def test_centring_spreads_a_narrow_cone():
    """dlib's descriptors of strangers sit at cosine ~0.8; centred, strangers are near 0 and the order kept."""
    rng = np.random.default_rng(2)
    people = rng.normal(size=(20, 32))
    cone = 6.0 + people                                   # every vector far along one shared direction
    raw = _unit(cone) @ _unit(cone).T
    assert raw[np.triu_indices(20, 1)].mean() > 0.9
    spread = centred(cone) @ centred(cone).T
    assert abs(spread[np.triu_indices(20, 1)].mean()) < 0.1


def test_relational_loss_reads_the_ensemble_when_given():
    from facegate.convert.distill.losses import distill_losses
    rng = np.random.default_rng(3)
    raw = tf.constant(rng.normal(size=(8, 4)), tf.float32)
    target = tf.constant(_unit(rng.normal(size=(8, 4))), tf.float32)
    ensemble = tf.constant(_unit(raw.numpy()), tf.float32)         # the student's own geometry: no loss
    labels = tf.constant(np.arange(8), tf.int32)
    w = {"cosine": 1.0, "relational": 1.0}
    own = distill_losses(raw, target, labels, w)
    matched = distill_losses(raw, target, labels, w, relational_target=ensemble)
    assert float(own["relational"]) > 0.01 and float(matched["relational"]) < 1e-10
    assert float(own["cosine"]) == pytest.approx(float(matched["cosine"]))


def _real_canvases(per_person: int = 2, people: int = 3):
    """Student canvases of a few CelebA dev identities, cut exactly as the distillation targets are."""
    from facegate.convert.datasets import celeba_images
    from facegate.convert.distill.targets import student_canvas
    from facegate.edge.detect.face import pick_face
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import load_detector
    root = celeba_images()
    if not root.is_dir():
        pytest.skip("celeba_dev is not in ../shared/datasets")
    detector = load_detector()
    canvases, labels = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir())[:people]:
        for photo in sorted(person.iterdir())[:per_person]:
            image = load_rgb(photo)
            face = pick_face(detector.detect(image), image.shape)
            canvases.append(student_canvas(image, face.landmarks))
            labels.append(person.name)
    return np.stack(canvases), np.array(labels)


def _same_and_other_person_similarities(e: np.ndarray, labels: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of the real canvases, checked: (same-person, different-person) cosines."""
    assert e.shape == (len(labels), dim) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    sims = e @ e.T
    same = labels[:, None] == labels[None, :]
    return sims[same & ~np.eye(len(labels), dtype=bool)], sims[~same]


def test_dlib_tells_real_people_apart_on_student_canvases():
    pytest.importorskip("dlib", reason="dlib is the peers extra (conversion time only)")
    pytest.importorskip("face_recognition_models")
    from facegate.convert.distill.ensemble import dlib_embeddings
    canvases, labels = _real_canvases()
    same, other = _same_and_other_person_similarities(dlib_embeddings(canvases, progress=False), labels, 128)
    assert same.min() > other.max(), (same, other)


def test_the_peer_tells_real_people_apart_on_student_canvases(peer_available):
    """The real MobileFaceNet member (the pinned npm file), run exactly as the ensemble runs it."""
    from facegate.convert.distill.ensemble import peer_embeddings
    canvases, labels = _real_canvases()
    same, other = _same_and_other_person_similarities(peer_embeddings(canvases, progress=False), labels, 192)
    assert other.max() < 0.5 < same.min(), (same, other)


def test_a_trainer_with_an_ensemble_trains_on_its_geometry(tmp_path, monkeypatch):
    """The ensemble's vectors reach the relational loss of every training step, and its members' embeddings
    are cached (a second trainer does not embed again)."""
    from facegate.convert.distill import ensemble
    from facegate.convert.distill.embedder import DistillConfig, Trainer
    from facegate.convert.distill.targets import TargetSet
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    n = 16
    data = TargetSet(np.array([f"k{i}" for i in range(n)]), np.array([f"p{i // 4}" for i in range(n)]),
                     rng.integers(0, 255, (n, 144, 144, 3), dtype=np.uint8),
                     _unit(rng.normal(size=(n, 16))).astype(np.float32), "tiny")
    calls = []

    def fake_dlib(canvases, progress=True):
        calls.append(len(canvases))
        return _unit(canvases.reshape(len(canvases), -1)[:, :128].astype(np.float32) + 1.0)

    monkeypatch.setattr(ensemble, "dlib_embeddings", fake_dlib)
    cfg = DistillConfig(out=tmp_path / "run", epochs=1, batch=8, lr=3e-3, warmup_epochs=0, width=0.25, depth=0.25,
                        augment_strength=0, steps_per_epoch=2, progress=False, ensemble=("teacher", "dlib"))
    trainer = Trainer(cfg, data, None)
    members = ensemble.ensemble_for(data, ("teacher", "dlib"))
    np.testing.assert_allclose(trainer.relational_targets, ensemble_vectors(list(members.values())), atol=1e-6)
    x, t, r, y = next(iter(trainer.dataset(0)))
    assert r.shape == (8, 144)
    assert trainer.fit()["epochs_done"] == 1
    Trainer(cfg, data, None)
    assert calls == [n, n]          # the trainer's own call, then the direct call above; the second trainer: cached


def test_frozen_batchnorm_keeps_its_statistics_while_the_convolutions_learn(tmp_path):
    import keras

    from facegate.convert.distill.embedder import DistillConfig, Trainer
    from facegate.convert.distill.targets import TargetSet
    rng = np.random.default_rng(6)
    n = 16
    data = TargetSet(np.array([f"k{i}" for i in range(n)]), np.array([""] * n),
                     rng.integers(0, 255, (n, 144, 144, 3), dtype=np.uint8),
                     _unit(rng.normal(size=(n, 16))).astype(np.float32), "tiny")
    cfg = DistillConfig(out=tmp_path / "run", epochs=1, batch=8, lr=1e-2, warmup_epochs=0, width=0.25, depth=0.25,
                        augment_strength=0, steps_per_epoch=3, progress=False, freeze_bn=True)
    trainer = Trainer(cfg, data, None)
    bns = [layer for layer in trainer.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    convs = [layer for layer in trainer.model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert bns and convs
    bn_before = [np.array(w) for b in bns for w in b.weights]
    conv_before = np.array(convs[0].kernel)
    x = tf.constant((data.centre_crops()[:8].astype(np.float32) - 127.5) / 128.0)
    t = tf.constant(data.targets[:8])
    trainer.train_step(x, t, t, tf.constant(np.arange(8, dtype=np.int32)))
    trainer.recalibrate_bn(batches=2)
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(bn_before, [w for b in bns for w in b.weights]))
    assert not np.array_equal(conv_before, np.array(convs[0].kernel))


def test_member_cache_embeds_only_faces_it_has_not_seen(tmp_path, monkeypatch):
    from facegate.convert.distill import ensemble
    from facegate.convert.distill.targets import TargetSet
    rng = np.random.default_rng(7)
    n = 12
    data = TargetSet(np.array([f"k{i}" for i in range(n)]), np.array([""] * n),
                     rng.integers(0, 255, (n, 144, 144, 3), dtype=np.uint8), np.eye(n, 4, dtype=np.float32), "t")
    calls = []

    def fake_dlib(canvases, progress=True):
        calls.append(len(canvases))
        return _unit(canvases.reshape(len(canvases), -1)[:, :128].astype(np.float32) + 1.0)

    monkeypatch.setattr(ensemble, "dlib_embeddings", fake_dlib)
    first = ensemble.member_embeddings(data.subset(np.arange(8)), "dlib", tmp_path)
    every = ensemble.member_embeddings(data.subset(np.arange(n)[::-1]), "dlib", tmp_path)   # another order
    assert calls == [8, 4]
    np.testing.assert_allclose(every[::-1][:8], first)
    np.testing.assert_allclose(every[::-1], fake_dlib(data.canvases))


@pytest.mark.parametrize("init, freeze_bn, head_fitted", [(True, False, False), (True, True, False),
                                                          (False, True, True), (False, False, True)])
def test_an_init_student_keeps_its_head_and_freezing_does_not_skip_the_fit(tmp_path, monkeypatch, init, freeze_bn,
                                                                          head_fitted):
    """A peer student's closed-form head is fitted exactly when no --init student is given, with or without
    --freeze-bn."""
    from facegate.convert.distill.embedder import DistillConfig, Trainer
    from facegate.convert.distill.targets import TargetSet
    from facegate.convert.students.mobilefacenet import StudentConfig
    rng = np.random.default_rng(8)
    n = 8
    data = TargetSet(np.array([f"k{i}" for i in range(n)]), np.array([""] * n),
                     rng.integers(0, 255, (n, 144, 144, 3), dtype=np.uint8),
                     _unit(rng.normal(size=(n, 16))).astype(np.float32), "tiny")
    tiny = StudentConfig(width=0.25, depth=0.25, embedding_dim=16)
    monkeypatch.setattr(Trainer, "_student_config", lambda self, dim: tiny)
    fits = []
    monkeypatch.setattr(Trainer, "_fit_head", lambda self, train: fits.append(len(train)) or {"views": 1})
    source = tiny.build()
    source.save(tmp_path / "init.keras")
    cfg = DistillConfig(out=tmp_path / "run", epochs=1, batch=4, progress=False, student="peer", freeze_bn=freeze_bn,
                        init=tmp_path / "init.keras" if init else None)
    trainer = Trainer(cfg, data, None)
    assert bool(fits) == head_fitted
    if init:     # the started student's function, its head scaled to unit output length
        x = (data.centre_crops().astype(np.float32) - 127.5) / 128.0
        mine, theirs = np.asarray(trainer.model(x)), np.asarray(source(x))
        np.testing.assert_allclose(_unit(mine), _unit(theirs), atol=1e-5)
        assert np.linalg.norm(mine, axis=1).mean() == pytest.approx(1.0, rel=1e-3)


def test_without_dlib_the_member_is_a_clear_model_error(monkeypatch):
    import sys

    from facegate.convert.distill.ensemble import dlib_models
    from facegate.edge.errors import ModelError
    monkeypatch.setitem(sys.modules, "dlib", None)          # as on a machine without the peers extra
    with pytest.raises(ModelError, match=r"needs the peers extra .*pip install -e '\.\[peers\]'"):
        dlib_models()
