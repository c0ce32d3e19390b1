"""The embedder distillation pipeline: student network, data, losses, training, resume."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facegate.convert.distill import losses  # noqa: E402
from facegate.convert.distill.augment import AugmentConfig, augment  # noqa: E402
from facegate.convert.distill.embedder import DistillConfig, Trainer, label_ids, pair_accuracy  # noqa: E402
from facegate.convert.distill.sources import Photo, lfw_pair_people, lfw_training_photos, split_photos  # noqa: E402
from facegate.convert.distill.targets import TargetSet, build_targets, student_canvas  # noqa: E402
from facegate.convert.students.mobilefacenet import StudentConfig, build_student  # noqa: E402
from facegate.edge.detect.face import pick_face  # noqa: E402
from facegate.edge.face.align import align_face  # noqa: E402
from facegate.edge.face.embed import Embedder, l2_normalise  # noqa: E402
from facegate.edge.images import load_rgb  # noqa: E402


def test_student_builds_at_declared_shape():
    full = build_student()
    assert full.input_shape == (None, 112, 112, 3)
    out = full(np.zeros((2, 112, 112, 3), np.float32))
    assert out.shape == (2, 128)
    assert 0.9e6 < full.count_params() < 1.2e6     # MobileFaceNet's ~1M parameters
    slim = build_student(StudentConfig(width=0.5, depth=0.5, embedding_dim=64))
    assert slim(np.zeros((1, 112, 112, 3), np.float32)).shape == (1, 64)
    assert slim.count_params() < full.count_params() / 3
    assert any(layer.__class__.__name__ == "DepthwiseConv2D" for layer in full.layers)


def test_lfw_training_photos_exclude_every_pair_person(lfw_dir):
    excluded = lfw_pair_people(lfw_dir / "pairs.txt")
    assert len(excluded) == 4281
    photos = lfw_training_photos(lfw_dir)
    assert len(photos) == 1549
    assert not {p.label.removeprefix("lfw:") for p in photos} & excluded


def test_the_default_set_takes_pad_devs_live_people_never_its_attacks():
    from facegate.convert.datasets import shared_datasets
    from facegate.convert.distill.pipeline import default_photos
    pad = shared_datasets() / "pad_dev"
    if not (pad / "labels.tsv").exists():
        pytest.skip("pad_dev is not in ../shared/datasets")
    photos = default_photos()
    from_pad = [p for p in photos if pad in p.path.parents]
    assert len(from_pad) == 485 and all(p.path.parent.name == "live" for p in from_pad)
    labels = {p.label for p in from_pad}
    assert "pad:nuaa-0001" in labels and "pad:msu-002" in labels and "" in labels    # CelebA-Spoof: no ids
    assert sum(p.label == "" for p in from_pad) == 200


def test_identity_split_is_disjoint_and_stable():
    photos = [Photo(__import__("pathlib").Path(f"/x/{i}.jpg"), f"id{i % 50}") for i in range(500)]
    train, held = split_photos(photos, every=5)
    assert held and train
    assert not {p.label for p in train} & {p.label for p in held}
    assert split_photos(photos, every=5)[1] == held


def test_canvas_centre_is_the_runtime_alignment(lfw_images, detector):
    path = next(iter(lfw_images.values()))[0]
    img = load_rgb(path)
    face = pick_face(detector.detect(img), img.shape, "central")
    canvas = student_canvas(img, face.landmarks)
    assert canvas.shape == (144, 144, 3)
    runtime = align_face(img, face, 112, "similarity112")
    centre = augment(canvas, np.random.default_rng(0), AugmentConfig(strength=0))
    diff = np.abs(centre.astype(int) - runtime.astype(int))
    assert int(diff.max()) <= 3 and float(diff.mean()) < 0.2      # bilinear rounding only
    views = [augment(canvas, np.random.default_rng(s)) for s in range(8)]
    assert all(v.shape == (112, 112, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 8                      # augmentation varies
    assert np.mean([np.abs(v.astype(float) - runtime).mean() for v in views]) > 5


def test_semi_hard_triplet_loss_matches_brute_force():
    rng = np.random.default_rng(1)
    e = l2_normalise(rng.normal(size=(12, 8))).astype(np.float32)
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, -1, -2], np.int32)
    got = float(losses.semi_hard_triplet_loss(tf.constant(e), tf.constant(y), 0.2))
    d = np.maximum(2 - 2 * e @ e.T, 0)
    total, n = 0.0, 0
    for a in range(12):
        for p in range(12):
            if a == p or y[a] < 0 or y[a] != y[p]:
                continue
            negs = [d[a, k] for k in range(12) if k != a and not (y[k] == y[a] and y[a] >= 0)]
            semi = [v for v in negs if v > d[a, p]]
            dn = min(semi) if semi else max(negs)
            total += max(d[a, p] - dn + 0.2, 0)
            n += 1
    assert got == pytest.approx(total / n, rel=1e-5)


def test_relational_loss_zero_iff_same_geometry():
    t = l2_normalise(np.random.default_rng(2).normal(size=(6, 16))).astype(np.float32)
    assert float(losses.relational_loss(tf.constant(t * 3.0), tf.constant(t))) == pytest.approx(0, abs=1e-6)
    assert float(losses.relational_loss(tf.constant(t[::-1].copy()), tf.constant(t))) > 1e-3


class _FakeTeacher(Embedder):
    """A deterministic stand-in teacher (mean colour per quadrant, 12-D) to test the cache alone."""

    def __init__(self):
        from facegate.edge.cards import InputSpec
        self.spec = InputSpec(40, alignment="similarity112")
        self.name = self.identity = "fake-teacher"
        self.calls = 0

    def embed(self, crops):
        self.calls += 1
        c = np.asarray(crops, np.float32)
        q = [c[:, :20, :20], c[:, :20, 20:], c[:, 20:, :20], c[:, 20:, 20:]]
        return l2_normalise(np.concatenate([x.mean(axis=(1, 2)) for x in q], axis=1) + 1.0)


def test_target_cache_round_trips(tmp_path, lfw_images, detector):
    photos = [Photo(p, name) for name, ps in lfw_images.items() for p in ps[:2]]
    photos.append(Photo(tmp_path / "broken.jpg", "nobody"))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    teacher = _FakeTeacher()
    data = build_targets(photos, teacher, detector, tmp_path / "cache", save_every=3, progress=False)
    assert len(data) == len(photos) - 1
    assert data.canvases.shape[1:] == (144, 144, 3)
    np.testing.assert_allclose(np.linalg.norm(data.targets, axis=1), 1.0, atol=1e-5)
    calls = teacher.calls
    again = build_targets(photos, teacher, detector, tmp_path / "cache", progress=False)
    assert teacher.calls == calls                        # nothing recomputed
    np.testing.assert_array_equal(again.canvases, data.canvases)
    np.testing.assert_array_equal(again.targets, data.targets)
    assert list(again.labels) == list(data.labels)
    # flip-averaged: the stored target is the mean of the crop and its mirror
    img = load_rgb(photos[0].path)
    face = pick_face(detector.detect(img), img.shape, "central")
    crop = align_face(img, face, 40, "similarity112")[None]
    expect = l2_normalise(teacher.embed(crop) + teacher.embed(crop[:, :, ::-1]))
    np.testing.assert_allclose(data.targets[0], expect[0], atol=1e-5)


def test_a_grown_photo_set_embeds_only_its_new_photos(tmp_path, lfw_images, detector):
    """Adding folders (pad_dev's live faces, say) to a training set reuses every face another cache of the
    same teacher and detector already holds, and gives what a build from nothing gives."""
    people = list(lfw_images.items())
    first = [Photo(p, name) for name, ps in people[:2] for p in ps[:2]]
    extra = [Photo(p, name) for name, ps in people[2:3] for p in ps[:2]]
    broken = Photo(tmp_path / "broken.jpg", "nobody")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    teacher = _FakeTeacher()
    build_targets(first + [broken], teacher, detector, tmp_path / "cache", progress=False)
    before = teacher.calls
    grown = extra[:1] + first + [broken] + extra[1:]
    data = build_targets(grown, teacher, detector, tmp_path / "cache", progress=False)
    assert teacher.calls - before == 2                 # one flip-averaged batch: the two new photos only
    assert list(data.keys) == [p.key for p in grown if p is not broken]
    scratch = build_targets(grown, _FakeTeacher(), detector, tmp_path / "scratch", progress=False)
    np.testing.assert_array_equal(data.canvases, scratch.canvases)
    np.testing.assert_allclose(data.targets, scratch.targets, atol=1e-6)
    # another teacher never takes these faces
    other = _FakeTeacher()
    other.identity = "another-teacher"
    build_targets(first, other, detector, tmp_path / "cache", progress=False)
    assert other.calls == 2


def _tiny_set(n: int = 16, dim: int = 16) -> TargetSet:
    rng = np.random.default_rng(0)
    canvases = rng.integers(0, 255, size=(n, 144, 144, 3), dtype=np.uint8)
    targets = l2_normalise(rng.normal(size=(n, dim))).astype(np.float32)
    labels = np.array([f"p{i // 4}" for i in range(n)])
    return TargetSet(np.array([str(i) for i in range(n)]), labels, canvases, targets, "tiny")


def test_tiny_distillation_lowers_loss_and_resumes(tmp_path):
    data = _tiny_set()
    cfg = DistillConfig(out=tmp_path / "run", epochs=1, batch=8, lr=3e-3, warmup_epochs=0, width=0.25, depth=0.25,
                        augment_strength=0, steps_per_epoch=2, progress=False,
                        weights={"cosine": 1.0, "l2": 0.5, "relational": 1.0, "triplet": 0.5})
    trainer = Trainer(cfg, data, data.subset(np.arange(8)))
    x = tf.constant((data.centre_crops()[:8].astype(np.float32) - 127.5) / 128.0)
    t = tf.constant(data.targets[:8])
    y = tf.constant(label_ids(data.labels)[:8])
    first = trainer.train_step(x, t, t, y)
    assert set(first) == {"cosine", "l2", "relational", "triplet", "total"}
    for _ in range(25):
        last = trainer.train_step(x, t, t, y)
    assert last["total"] < 0.7 * first["total"]
    assert last["cosine"] < first["cosine"]

    r = trainer.fit()
    assert r["epochs_done"] == 1 and (cfg.out / "student.keras").exists() and (cfg.out / "loss.png").exists()
    assert (cfg.out / "student.keras.json").exists()
    cfg2 = DistillConfig(**{**cfg.__dict__, "epochs": 2})
    resumed = Trainer(cfg2, data, data.subset(np.arange(8)))
    r2 = resumed.fit()
    assert r2["epochs_done"] == 2
    rows = (cfg.out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[1].startswith("1,") and rows[2].startswith("2,")   # header + 2 epochs

    warm = Trainer(DistillConfig(**{**cfg.__dict__, "out": tmp_path / "warm", "init": cfg.out / "student.keras"}),
                   data, data.subset(np.arange(8)))
    import keras
    saved = keras.saving.load_model(cfg.out / "student.keras", compile=False)
    head = {id(w) for w in warm.model.get_layer("embedding_conv").weights}
    for w, b in zip(warm.model.weights, saved.get_weights()):
        if id(w) not in head:               # the head alone is scaled to unit output length
            np.testing.assert_array_equal(np.asarray(w), b)
    kernel, source = np.asarray(warm.model.get_layer("embedding_conv").kernel), saved.get_layer("embedding_conv").kernel
    scale = np.asarray(source).ravel()[0] / kernel.ravel()[0]
    np.testing.assert_allclose(kernel * scale, np.asarray(source), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="different student"):
        Trainer(DistillConfig(**{**cfg.__dict__, "width": 0.5, "init": cfg.out / "student.keras"}), data, None)


def test_pair_accuracy_separates_identities():
    rng = np.random.default_rng(3)
    centres = l2_normalise(rng.normal(size=(5, 32)))
    emb = l2_normalise(np.repeat(centres, 4, axis=0) + 0.05 * rng.normal(size=(20, 32)))
    r = pair_accuracy(emb, np.repeat(np.arange(5), 4))
    assert r["pair_accuracy"] == 1.0 and r["genuine_mean"] > r["impostor_mean"]


def _photos_and_teacher(tmp_path, lfw_images, per_person: int):
    """A folder of identity sub-folders (a few LFW photos each) and a quick teacher (the committed
    student: any carded embedder can teach)."""
    import shutil

    from facegate.edge.registry import MODELS_DIR
    data = tmp_path / "photos"
    for name, paths in lfw_images.items():
        (data / name).mkdir(parents=True)
        for p in paths[:per_person]:
            shutil.copy(p, data / name / p.name)
    return data, MODELS_DIR / "facenet-student" / "facenet-student_fp16.tflite"


def test_distill_embedder_cli_tiny_run(tmp_path, lfw_images, capsys):
    """`facegate distill embedder` end to end on a folder of photos, with any embedder as teacher."""
    from facegate.apps.cli import main

    data, teacher = _photos_and_teacher(tmp_path, lfw_images, 2)
    out = tmp_path / "run"
    assert main(["distill", "embedder", "--data", str(data), "--teacher", str(teacher), "--out", str(out),
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--width", "0.25", "--depth", "0.25",
                 "--hold-out-every", "0", "--targets-cache", str(tmp_path / "targets"), "--no-progress"]) == 0
    assert (out / "student.keras").exists() and (out / "loss.png").exists()
    assert list((tmp_path / "targets").glob("targets-*.npz"))   # the run's cache, not the user's
    card = __import__("json").loads((out / "student.keras.json").read_text())
    assert card["input"]["size"] == 112 and card["input"]["alignment"] == "similarity112"
    assert "finished" in capsys.readouterr().out


@pytest.mark.slow
def test_distill_embedder_peer_cli_tiny_run(tmp_path, lfw_images, capsys, peer_available):
    """`--student peer`: the pinned MobileFaceNet gets a fitted head (epoch 0, logged and kept as the
    best student), and one fine-tuning epoch from it runs through the same trainer."""
    import json

    from facegate.apps.cli import main

    data, teacher = _photos_and_teacher(tmp_path, lfw_images, 3)
    out = tmp_path / "run"
    assert main(["distill", "embedder", "--student", "peer", "--data", str(data), "--teacher", str(teacher),
                 "--out", str(out), "--epochs", "0", "--head-views", "2", "--head-steps", "20",
                 "--hold-out-every", "0", "--targets-cache", str(tmp_path / "targets"), "--no-progress"]) == 0
    card = json.loads((out / "student.keras.json").read_text())
    assert card["accuracy"]["student"]["architecture"] == "mobilefacenet-peer"
    head = card["accuracy"]["distillation"]
    assert head["epoch"] == 0 and head["head_views"] == 2 and head["head_steps"] == 20
    # the teacher here is the committed student: a head on the same backbone can match it closely
    assert head["head_train_cosine"] > 0.9
    assert "finished" in capsys.readouterr().out
    tuned = tmp_path / "tuned"
    assert main(["distill", "embedder", "--student", "peer", "--init", str(out / "student.keras"), "--data", str(data),
                 "--teacher", str(teacher), "--out", str(tuned), "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "4", "--lr", "1e-5", "--hold-out-every", "0", "--targets-cache", str(tmp_path / "targets"),
                 "--no-progress"]) == 0
    rows = (tuned / "log.csv").read_text().splitlines()
    assert len(rows) == 2 and (tuned / "student.keras").exists()


@pytest.mark.slow
def test_distill_pack_carries_a_peer_student_and_the_ensemble_to_a_portable_run(tmp_path, lfw_images, capsys,
                                                                                  peer_available):
    """`distill pack --init STUDENT --ensemble teacher,peer`: what a GPU box without TensorFlow needs to
    continue `distill embedder --init STUDENT --ensemble ...` — the peer student (head scaled to unit
    output length) and the ensemble's relational targets — and a portable run from it imports back as
    the same architecture."""
    import keras

    from facegate.apps.cli import main
    from facegate.convert.distill.embedder import NORMALISATION, normalise
    from facegate.convert.distill.portable import import_student, read_pack, read_pack_extras, train
    from facegate.edge.cards import load_card

    data, teacher = _photos_and_teacher(tmp_path, lfw_images, 3)
    start = tmp_path / "start"
    assert main(["distill", "embedder", "--student", "peer", "--data", str(data), "--teacher", str(teacher),
                 "--out", str(start), "--epochs", "0", "--head-views", "1", "--head-steps", "5",
                 "--hold-out-every", "0", "--targets-cache", str(tmp_path / "targets"), "--no-progress"]) == 0
    pack = tmp_path / "pack.npz"
    assert main(["distill", "pack", "--init", str(start / "student.keras"), "--ensemble", "teacher,peer",
                 "--data", str(data), "--teacher", str(teacher), "--out", str(pack),
                 "--targets-cache", str(tmp_path / "targets"), "--no-progress"]) == 0
    assert "relational targets of teacher+peer (320-D)" in capsys.readouterr().out
    faces, extras = read_pack(pack), read_pack_extras(pack)
    assert extras.relational.shape == (len(faces), 128 + 192)
    np.testing.assert_allclose(np.linalg.norm(extras.relational, axis=1), 1.0, atol=2e-3)
    assert extras.student["architecture"] == "mobilefacenet-peer"
    (tmp_path / "init.keras").write_bytes(extras.init_model)
    packed = keras.saving.load_model(tmp_path / "init.keras", compile=False)
    raw = np.asarray(packed(normalise(faces.centre_crops(), NORMALISATION)))
    # the head scaled to unit mean length on the original faces; the pack holds them WebP-compressed
    assert abs(np.linalg.norm(raw, axis=1).mean() - 1.0) < 0.05
    run = tmp_path / "run"
    train(pack, run, steps=1, batch=4, hold_out_every=0, workers=0, validate_every=1, recal_steps=0, lr=1e-6)
    import_student(run, tmp_path / "student.keras")
    assert load_card(tmp_path / "student.keras").accuracy["student"]["architecture"] == "mobilefacenet-peer"
    assert main(["distill", "pack", "--init", str(tmp_path / "none.keras"), "--out", str(pack)]) == 2
