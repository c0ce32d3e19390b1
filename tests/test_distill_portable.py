"""The backend-neutral (GPU box, no TensorFlow) distillation path: pack, losses, schedule, a tiny run,
and the import back into a carded student.keras. CI runs it on the TensorFlow backend; the same
code ran on JAX on a lent H100 to train the committed student."""
from __future__ import annotations

import json
import math
import time

import cv2
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facegate.convert.distill import losses  # noqa: E402
from facegate.convert.distill.embedder import identity_groups, label_ids  # noqa: E402
from facegate.convert.distill.portable import (  # noqa: E402
    _sample,
    batches,
    import_student,
    learning_rate,
    load_trained,
    make_loss,
    progress,
    read_pack,
    train,
    write_pack,
)
from facegate.convert.distill.sources import is_held_out  # noqa: E402
from facegate.convert.distill.targets import TargetSet  # noqa: E402
from facegate.edge.cards import load_card  # noqa: E402
from facegate.edge.face.embed import l2_normalise  # noqa: E402
from facegate.edge.images import load_rgb  # noqa: E402


def _face_set(lfw_images, dim: int = 16) -> TargetSet:
    """Real LFW photos as canvases (so WebP compression is tested on faces), random unit targets."""
    canvases, labels = [], []
    for name, paths in lfw_images.items():
        for p in paths[:4]:
            canvases.append(cv2.resize(load_rgb(p)[53:197, 53:197], (144, 144)))
            labels.append(f"lfw:{name}")
    n = len(canvases)
    targets = l2_normalise(np.random.default_rng(0).normal(size=(n, dim))).astype(np.float32)
    return TargetSet(np.array([f"k{i}" for i in range(n)]), np.array(labels), np.stack(canvases), targets, "test-teacher")


def test_pack_round_trips_and_is_small(tmp_path, lfw_images):
    data = _face_set(lfw_images)
    path = tmp_path / "faces.npz"
    info = write_pack(data, path, quality=82)
    assert info["faces"] == len(data)
    assert info["bytes"] < data.canvases.nbytes / 4          # WebP: several times smaller than pixels
    back = read_pack(path)
    assert back.teacher == "test-teacher"
    np.testing.assert_array_equal(back.keys, data.keys)
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.targets, data.targets)
    diff = np.abs(back.canvases.astype(int) - data.canvases.astype(int))
    assert back.canvases.shape == data.canvases.shape and float(diff.mean()) < 4.0    # lossy, but close
    np.savez(tmp_path / "other.npz", format=np.array("something-else"))
    with pytest.raises(ValueError, match="not a facegate-distill-pack"):
        read_pack(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="distill pack"):
        read_pack(tmp_path / "missing.npz")


def test_portable_loss_equals_tensorflow_losses():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(12, 16)).astype(np.float32) * 0.3
    target = l2_normalise(rng.normal(size=(12, 16))).astype(np.float32)
    ids = np.repeat(np.arange(4), 3).astype(np.float32)
    weights = {"cosine": 1.0, "l2": 0.5, "relational": 1.0}
    ours = float(make_loss(weights)(tf.constant(np.concatenate([target, ids[:, None]], 1)), tf.constant(raw)))
    ref = float(losses.distill_losses(tf.constant(raw), tf.constant(target), tf.constant(ids), weights)["total"])
    assert ours == pytest.approx(ref, rel=1e-5)
    same = make_loss(weights)(tf.constant(np.concatenate([target, ids[:, None]], 1)), tf.constant(target))
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="portable trainer"):
        make_loss({"triplet": 1.0})


def test_schedule_warms_up_decays_and_follows_the_clock():
    assert learning_rate(0.0, 1e-3, 0.1) == pytest.approx(5e-5)
    assert learning_rate(0.1, 1e-3, 0.1) == pytest.approx(1e-3)
    assert learning_rate(1.0, 1e-3, 0.1) == pytest.approx(1e-5)
    mid = learning_rate(0.55, 1e-3, 0.1)
    assert mid == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert progress(50, 100, time.time(), None) == pytest.approx(0.5)
    assert progress(1, 100, time.time() - 30, 1.0) == pytest.approx(0.5, abs=0.02)   # half the minute spent
    assert progress(500, 100, time.time(), None) == 1.0


def test_batches_hold_same_person_groups_and_workers_agree(lfw_images):
    data = _face_set(lfw_images)
    ids = label_ids(data.labels)
    idx = _sample(identity_groups(ids), len(ids), 8, np.random.default_rng(0))
    assert len(idx) == 8 and len(set(ids[idx])) < 8          # at least one same-person pair
    serial = batches(data, 8, 1.0, seed=3, workers=0)
    x, y = next(serial)
    assert x.shape == (8, 112, 112, 3) and x.dtype == np.uint8 and y.shape == (8, 17)
    pooled = batches(data, 8, 1.0, seed=3, workers=1)
    x2, y2 = next(pooled)
    pooled.close()
    np.testing.assert_array_equal(y, y2)                     # same seed, same batch, in a forked worker
    np.testing.assert_array_equal(x, x2)


def test_tiny_portable_run_imports_as_a_carded_student(tmp_path, lfw_images):
    data = _face_set(lfw_images)
    pack = tmp_path / "faces.npz"
    write_pack(data, pack)
    out = tmp_path / "run"
    people = sorted(set(data.labels))
    every = next(e for e in range(2, 50) if 0 < sum(is_held_out(p, e) for p in people) < len(people))
    r = train(pack, out, steps=4, batch=8, width=0.25, depth=0.25, hold_out_every=every, workers=0,
              validate_every=2, recal_steps=2, mixed=False)
    assert 0 < r["run"]["val_faces"] < len(data)
    assert "val_cosine_mean" in r["best"]
    assert r["run"]["steps_done"] == 4 and r["run"]["backend"] == "tensorflow"
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,lr,loss") and len(rows) >= 3
    assert (out / "loss.png").stat().st_size > 1000
    model, info = load_trained(out)
    assert info["run"]["student"]["width"] == 0.25
    student = import_student(out, tmp_path / "student.keras")
    card = load_card(tmp_path / "student.keras")
    assert card.input.size == 112 and card.input.normalisation == "mean127.5_div128"
    assert card.accuracy["student"]["activation"] == "prelu"
    assert json.loads((out / "student.json").read_text())["best"]["step"] == student["step"]
    from facegate.apps.cli import main
    assert main(["distill", "import", str(out), "--out", str(tmp_path / "cli" / "student.keras")]) == 0
    assert load_card(tmp_path / "cli" / "student.keras").accuracy["distillation"] == card.accuracy["distillation"]
    with pytest.raises(FileNotFoundError, match="portable run"):
        import_student(tmp_path, tmp_path / "x.keras")
    import keras
    again = keras.saving.load_model(tmp_path / "student.keras", compile=False)
    x = np.random.default_rng(0).normal(size=(2, 112, 112, 3)).astype(np.float32)
    np.testing.assert_allclose(again(x), model(x), atol=1e-5)


def test_relu_student_has_no_prelu_and_same_shape():
    from facegate.convert.students.mobilefacenet import StudentConfig, build_student
    prelu = build_student(StudentConfig(width=0.25, depth=0.25))
    relu = build_student(StudentConfig(width=0.25, depth=0.25, activation="relu"))
    kinds = {layer.__class__.__name__ for layer in relu.layers}
    assert "PReLU" not in kinds and "ReLU" in kinds
    assert relu.output_shape == prelu.output_shape == (None, 128)
    assert relu.count_params() < prelu.count_params()          # PReLU slopes are the only difference
    with pytest.raises(ValueError, match="activation"):
        StudentConfig(activation="swish")


def test_relational_targets_travel_in_the_y_the_portable_loss_reads():
    """With an ensemble's vectors after the teacher's targets, the relational term matches their
    similarities (as `distill embedder --ensemble` does), the cosine and L2 terms the teacher's."""
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(12, 16)).astype(np.float32) * 0.3
    target = l2_normalise(rng.normal(size=(12, 16))).astype(np.float32)
    relational = l2_normalise(rng.normal(size=(12, 40))).astype(np.float32)
    ids = np.repeat(np.arange(4), 3).astype(np.float32)
    weights = {"cosine": 1.0, "l2": 0.5, "relational": 10.0}
    y = tf.constant(np.concatenate([target, relational, ids[:, None]], 1))
    ours = float(make_loss(weights, target_dim=16)(y, tf.constant(raw)))
    ref = losses.distill_losses(tf.constant(raw), tf.constant(target), tf.constant(ids), weights,
                                relational_target=tf.constant(relational))
    assert ours == pytest.approx(float(ref["total"]), rel=1e-5)
    plain = losses.distill_losses(tf.constant(raw), tf.constant(target), tf.constant(ids), weights)
    assert abs(float(plain["total"]) - ours) > 0.01            # the ensemble's geometry, not the teacher's


def _tiny_student(path, dim: int = 16):
    """A small carded student file standing in for the peer student (any Keras model of 112x112 faces)."""
    import keras

    from facegate.convert.distill.embedder import save_student_file
    from facegate.convert.students.mobilefacenet import StudentConfig, build_student
    cfg = StudentConfig(width=0.25, depth=0.25, embedding_dim=dim)
    model = build_student(cfg)
    save_student_file(model, path, metrics={}, config={}, student={**cfg.to_dict(), "architecture": "tiny-test"},
                      teacher="test-teacher", source="test")
    return keras.saving.load_model(path, compile=False)


def test_a_pack_carries_relational_targets_and_its_starting_student(tmp_path, lfw_images):
    from facegate.convert.distill.portable import PackExtras, read_pack_extras
    data = _face_set(lfw_images)
    relational = l2_normalise(np.random.default_rng(3).normal(size=(len(data), 40))).astype(np.float32)
    _tiny_student(tmp_path / "start.keras")
    blob = (tmp_path / "start.keras").read_bytes()
    write_pack(data, tmp_path / "plain.npz")
    assert read_pack_extras(tmp_path / "plain.npz") == PackExtras()
    info = write_pack(data, tmp_path / "full.npz",
                      extras=PackExtras(relational, blob, {"architecture": "tiny-test", "embedding_dim": 16}))
    assert info["relational_dim"] == 40 and info["init_model"]
    back = read_pack_extras(tmp_path / "full.npz")
    np.testing.assert_allclose(back.relational, relational, atol=1e-3)         # stored as float16
    assert back.init_model == blob and back.student["architecture"] == "tiny-test"
    with pytest.raises(ValueError, match="relational targets for"):
        write_pack(data, tmp_path / "bad.npz", extras=PackExtras(relational[:-1]))
    with pytest.raises(ValueError, match="needs its config"):
        write_pack(data, tmp_path / "bad.npz", extras=PackExtras(init_model=blob))


def test_a_packed_student_trains_on_the_ensemble_and_imports_with_its_own_architecture(tmp_path, lfw_images):
    """The GPU-box path of `distill embedder --init STUDENT --ensemble ...`: the starting student and
    the relational targets come in the pack; the run starts from that student (not a new MobileFaceNet),
    reads the ensemble in its loss, and `distill import` rebuilds that architecture."""
    from facegate.convert.distill.portable import PackExtras
    data = _face_set(lfw_images)
    start = _tiny_student(tmp_path / "start.keras")
    relational = l2_normalise(np.random.default_rng(4).normal(size=(len(data), 40))).astype(np.float32)
    pack = tmp_path / "faces.npz"
    write_pack(data, pack, extras=PackExtras(relational, (tmp_path / "start.keras").read_bytes(),
                                             {"architecture": "tiny-test", "embedding_dim": 16, "width": 0.25}))
    people = sorted(set(data.labels))
    every = next(e for e in range(2, 50) if 0 < sum(is_held_out(p, e) for p in people) < len(people))
    out = tmp_path / "run"
    r = train(pack, out, steps=2, batch=8, hold_out_every=every, workers=0, validate_every=2, recal_steps=0,
              lr=1e-2, weights={"cosine": 1.0, "relational": 10.0})
    assert r["run"]["init_model"] == "init.keras" and r["run"]["relational_targets"] == 40
    assert r["run"]["student"]["architecture"] == "tiny-test" and not r["run"]["mixed_precision"]
    model, _ = load_trained(out)
    assert [w.shape for w in model.weights] == [w.shape for w in start.weights]
    x = np.random.default_rng(0).normal(size=(2, 112, 112, 3)).astype(np.float32)
    assert not np.allclose(model(x), start(x), atol=1e-4)                      # it trained
    import_student(out, tmp_path / "student.keras")
    assert load_card(tmp_path / "student.keras").accuracy["student"]["architecture"] == "tiny-test"
    with pytest.raises(ValueError, match="carries its starting student"):
        train(pack, tmp_path / "again", steps=1, batch=8, workers=0, init=tmp_path / "start.keras")
