"""MobileNet MTCNN students: shapes, training step, the cascade on student files, speed features."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facegate.edge.detect import CascadeConfig, Face
from facegate.edge.detect.boxes import pairwise_overlap
from facegate.edge.detect.face import pick_face
from facegate.edge.images import load_rgb
from facegate.edge.registry import MODELS_DIR, load_detector

STUDENT = "mtcnn-student"


def test_student_nets_have_teacher_shapes():
    pytest.importorskip("tensorflow")
    from facegate.convert.students.mtcnn import build_student_nets
    from facegate.convert.teachers.mtcnn import BUILDERS

    students = build_student_nets()
    for net, model in students.items():
        teacher = BUILDERS[net]()
        shapes = [(1, 12, 12, 3), (2, 36, 52, 3), (1, 100, 74, 3)] if net == "pnet" else [(3, *model.input_shape[1:])]
        for shape in shapes:
            x = np.zeros(shape, np.float32)
            assert [tuple(o.shape) for o in model(x)] == [tuple(o.shape) for o in teacher(x)]
        if net == "pnet":   # odd sizes: the stride-2 conv drops the teacher's last, half-padded window
            s, t = model(np.zeros((1, 37, 53, 3), np.float32))[0].shape, teacher(np.zeros((1, 37, 53, 3), np.float32))[0].shape
            assert (t[1] - s[1], t[2] - s[2]) == (1, 1)
        assert model.count_params() < teacher.count_params() / (3 if net == "pnet" else 1)
        assert any(layer.__class__.__name__ == "DepthwiseConv2D" for layer in model.layers)


def test_box_mirroring_is_the_geometry_of_a_mirrored_window():
    """The training flips rely on this identity: mirroring a patch of width W maps the window
    [x1, x2] with offsets (dx1, dy1, dx2, dy2) to [W-1-x2, W-1-x1] with (-dx2, dy1, -dx1, dy2)."""
    pytest.importorskip("tensorflow")
    from facegate.convert.distill.detector import _mirror_box

    rng = np.random.default_rng(0)
    width, side = 64, 12.0
    off = rng.normal(0, 0.2, size=(50, 4))
    x1 = rng.integers(0, width - 12, size=50).astype(float)
    x2 = x1 + side - 1
    decoded = np.stack([x1 + off[:, 0] * side, x2 + off[:, 2] * side], axis=1)
    mirrored_window = np.stack([width - 1 - x2, width - 1 - x1], axis=1)
    m = _mirror_box(off)
    decoded_mirror = np.stack([mirrored_window[:, 0] + m[:, 0] * side, mirrored_window[:, 1] + m[:, 2] * side], axis=1)
    np.testing.assert_allclose(decoded_mirror, width - 1 - decoded[:, ::-1], atol=1e-9)
    np.testing.assert_array_equal(m[:, [1, 3]], off[:, [1, 3]])


def test_tiny_training_step_lowers_the_loss():
    tf = pytest.importorskip("tensorflow")
    import keras

    from facegate.convert.distill.detector import LOSS_WEIGHTS, detector_losses
    from facegate.convert.students.mtcnn import build_onet_student

    rng = np.random.default_rng(0)
    model = build_onet_student()
    x = tf.constant(rng.normal(0, 0.5, size=(32, 48, 48, 3)).astype(np.float32))
    targets = {"prob": tf.constant(rng.random((32, 1)).astype(np.float32)),
               "box": tf.constant(rng.normal(0, 0.1, (32, 4)).astype(np.float32)),
               "landmarks": tf.constant(rng.random((32, 10)).astype(np.float32))}
    opt = keras.optimizers.Adam(3e-3)
    losses = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            terms = detector_losses(model(x, training=True), targets, LOSS_WEIGHTS, 0.7)
        opt.apply_gradients(zip(tape.gradient(terms["total"], model.trainable_variables), model.trainable_variables))
        losses.append(float(terms["total"]))
    assert set(terms) == {"cls", "box", "landmarks", "total"}
    assert losses[-1] < 0.5 * losses[0]


def test_ohem_keeps_only_the_hardest():
    tf = pytest.importorskip("tensorflow")
    from facegate.convert.distill.detector import detector_losses

    prob = np.array([[0.5, 0.5], [0.01, 0.99], [0.99, 0.01], [0.5, 0.5]], np.float32)   # 2 easy, 2 hard
    t = {"prob": tf.constant([[0.0], [1.0], [0.0], [1.0]])}
    all_ = float(detector_losses([tf.constant(prob)], t, {"cls": 1.0}, 1.0)["cls"])
    hard = float(detector_losses([tf.constant(prob)], t, {"cls": 1.0}, 0.5)["cls"])
    assert hard == pytest.approx(np.log(2), rel=1e-3)        # the two 0.5 windows vs certain targets
    assert all_ < hard



def test_logit_term_ranks_confident_faces_where_the_probability_kl_is_flat():
    """A student that calls two teacher faces (log-odds 9 and 4.6) both 0.99 is nearly perfect by
    KL but has lost their order; the log-odds term sees it, and is zero for an exact match."""
    tf = pytest.importorskip("tensorflow")
    from facegate.convert.distill.detector import detector_losses

    def softmax_pairs(logits):
        p1 = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
        return tf.constant(np.stack([1 - p1, p1], axis=1).astype(np.float32))

    teacher_logits = np.array([9.0, 4.6, -6.0])
    t = {"prob": tf.constant((1 / (1 + np.exp(-teacher_logits)))[:, None].astype(np.float32))}
    w = {"cls": 1.0, "logit": 1.0}
    exact = detector_losses([softmax_pairs(teacher_logits)], t, w, 1.0)
    flat = detector_losses([softmax_pairs([4.6, 4.6, -6.0])], t, w, 1.0)
    assert float(exact["logit"]) == pytest.approx(0.0, abs=1e-3)
    assert float(flat["cls"]) < 0.01                                   # KL barely notices
    assert float(flat["logit"]) == pytest.approx((9.0 - 4.6) ** 2 / 3, rel=0.02)
    assert "logit" not in detector_losses([softmax_pairs(teacher_logits)], t, {"cls": 1.0}, 1.0)

@pytest.mark.parametrize("name", [STUDENT, f"{STUDENT}-int8"])
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_committed_student_cascade_finds_real_faces(name, fmt, lfw_images, wider_dir):
    """Every committed student set loads through its cards (checksums) on each backend and finds
    the faces: LFW portraits (one central face, where the teacher puts it) and a WIDER photo (boxes
    overlap the ground truth)."""
    if not (MODELS_DIR / name / f"pnet.{fmt}").exists():
        pytest.fail(f"{name} {fmt} files are not committed")
    det = load_detector(name, fmt=fmt)
    teacher = load_detector("mtcnn-teacher", fmt=fmt)
    for paths in lfw_images.values():
        img = load_rgb(paths[0])
        face, ref = pick_face(det.detect(img), img.shape), pick_face(teacher.detect(img), img.shape)
        assert face is not None
        assert pairwise_overlap(face.box[None], ref.box[None])[0, 0] > 0.6
        iod = np.linalg.norm(ref.landmarks[1] - ref.landmarks[0])
        # measured on all 7,701 LFW photos (stage 8): mean ~3% of the inter-ocular distance, p95 ~7%
        assert np.mean(np.linalg.norm(face.landmarks - ref.landmarks, axis=1)) / iod < 0.12
    from facegate.convert.evaluate.wider import read_gt_txt
    gt = read_gt_txt(wider_dir / "wider_face_val_bbx_gt.txt")
    rel = next(r for r, b in sorted(gt.items()) if 1 <= len(b) <= 3 and (b[:, 2] >= 60).all())
    boxes = gt[rel].copy()
    boxes[:, 2:] += boxes[:, :2]
    faces = det.detect(load_rgb(wider_dir / "images" / rel))
    assert faces
    ov = pairwise_overlap(boxes, np.array([f.box for f in faces]))
    assert (ov.max(axis=1) > 0.4).all()


def test_speed_features_find_the_same_face(lfw_images):
    det = load_detector(STUDENT, fmt="tflite", config=CascadeConfig(min_face_size=20))
    img = load_rgb(next(iter(lfw_images.values()))[0])
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[100:350, 200:450] = img
    full = det.detect(frame)
    subject = pick_face(full, frame.shape)
    assert subject is not None
    roi = det.detect(frame, roi=subject)
    assert pairwise_overlap(pick_face(roi, frame.shape).box[None], subject.box[None])[0, 0] > 0.8
    fast = det.with_config(fast_path_min_face=60).detect(frame)
    assert pairwise_overlap(pick_face(fast, frame.shape).box[None], subject.box[None])[0, 0] > 0.8
    assert len(det.with_config(max_faces=1).detect(frame)) == 1
    # an ROI where the face no longer is: falls back to the whole frame and still finds it
    lost = Face(box=np.array([500, 380, 560, 440], np.float32), score=1.0, landmarks=np.zeros((5, 2), np.float32))
    again = det.detect(frame, roi=lost)
    assert pairwise_overlap(pick_face(again, frame.shape).box[None], subject.box[None])[0, 0] > 0.8
    with pytest.raises(ValueError, match="fast_path_min_face"):
        CascadeConfig(min_face_size=40, fast_path_min_face=30)
    with pytest.raises(ValueError, match="max_faces"):
        CascadeConfig(max_faces=0)


def test_students_are_selectable_by_name_in_the_pipeline(lfw_images):
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig
    from facegate.edge.registry import DETECTORS
    assert {STUDENT, f"{STUDENT}-int8"} <= set(DETECTORS)
    embedder = MODELS_DIR / "facenet-student" / "facenet-student_int8.tflite"
    pipe = Pipeline.from_config(PipelineConfig(detector=STUDENT, embedder=str(embedder), max_faces=1,
                                               fast_path_min_face=60, min_face_size=20))
    assert pipe.detector.name.startswith(STUDENT)
    img = load_rgb(next(iter(lfw_images.values()))[0])
    assert len(pipe.faces(img)) == 1


def test_distill_detector_cli_tiny_run_exports_a_working_cascade(tmp_path, capsys):
    """The whole command on a tiny run: three nets trained in cascade order, exported with cards,
    and the exported set loads and runs in the edge cascade."""
    pytest.importorskip("tensorflow")
    from facegate.apps.cli import main

    run, out = tmp_path / "run", tmp_path / "models"
    assert main(["distill", "detector", "--out", str(run), "--epochs", "1", "--max-images", "2", "--photos", "2",
                 "--online-views", "0.5", "--wider-repeat", "2", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["online_views"] == 0.5
    assert {p.name for p in run.glob("*.keras")} == {"pnet.keras", "rnet.keras", "onet.keras"}
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["pnet", "rnet", "onet"]
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run resumes: nothing is retrained
    assert main(["distill", "detector", "--out", str(run), "--epochs", "1", "--max-images", "2", "--photos", "2",
                 "--no-progress"]) == 0
    assert len((run / "log.csv").read_text().strip().splitlines()) == len(rows)
    assert main(["distill", "export-detector", "--src", str(run), "--out", str(out), "--no-int8"]) == 0
    det = load_detector(str(out / "mtcnn-student"), fmt="onnx")
    assert isinstance(det.detect(np.full((120, 160, 3), 128, np.uint8)), list)


def test_camera_jitter_degrades_the_share_asked_within_the_nets_range():
    from facegate.convert.distill.detector_data import camera_jitter

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, size=(200, 24, 24, 3)).astype(np.float32)
    assert np.array_equal(camera_jitter(x.copy(), np.random.default_rng(1), 0.0), x)
    out = camera_jitter(x.copy(), np.random.default_rng(1), 0.5)
    changed = np.array([not np.allclose(a, b) for a, b in zip(out, x)])
    assert 0.35 < changed.mean() < 0.65
    assert out.min() >= -127.5 / 128 - 1e-6 and out.max() <= 127.5 / 128 + 1e-6
    # same seed, same views: a sample cache rebuilt from scratch is the same cache
    np.testing.assert_array_equal(out, camera_jitter(x.copy(), np.random.default_rng(1), 0.5))
    half = x.astype(np.float16)
    assert camera_jitter(half, np.random.default_rng(1), 1.0).dtype == np.float32   # a copy, not the caller's


def test_jittered_stage_samples_carry_the_teachers_labels_of_what_the_net_sees(lfw_images):
    """Consistent teaching: each stored crop (jittered or not) is paired with the teacher's outputs
    on that very crop, so the student is never asked for an answer to a picture it was not shown."""
    from facegate.convert.distill.detector_data import TrainImage, stage_samples
    from facegate.edge.detect.mtcnn import split_outputs

    teacher = load_detector("mtcnn-teacher", fmt="tflite", config=CascadeConfig(min_face_size=20))
    images = [TrainImage(paths[0], np.zeros((0, 4))) for paths in list(lfw_images.values())[:2]]
    plain = stage_samples("onet", images, teacher, teacher.onet, teacher, 20, 3, rng=np.random.default_rng(0),
                          progress=False)
    jittered = stage_samples("onet", images, teacher, teacher.onet, teacher, 20, 3, rng=np.random.default_rng(0),
                             progress=False, camera_share=1.0)
    assert plain["x"].shape == jittered["x"].shape
    assert not np.allclose(plain["x"].astype(np.float32), jittered["x"].astype(np.float32))
    out = split_outputs(teacher.onet.run([jittered["x"].astype(np.float32)]))
    np.testing.assert_allclose(out["prob"][:, 1:2], jittered["prob"], atol=2e-2)
    np.testing.assert_allclose(out["landmarks"], jittered["landmarks"], atol=2e-2)
    assert (jittered["prob"] > 0.9).any()          # the faces are still faces after the camera


def test_init_copies_matching_nets_and_refuses_a_wrong_folder(tmp_path):
    pytest.importorskip("tensorflow")
    from facegate.convert.distill.detector import _start_from
    from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets
    from facegate.edge.errors import DatasetError

    old = build_student_nets()
    for name, model in old.items():
        model.save(tmp_path / f"{name}.keras")
    new = build_student_nets(DetectorStudentConfig(pnet=(8, 12, 16)))
    before = [w.copy() for w in new["pnet"].get_weights()]
    _start_from(new, tmp_path)
    for name in ("rnet", "onet"):
        for a, b in zip(new[name].get_weights(), old[name].get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(new["pnet"].get_weights(), before):   # other widths: left as built
        np.testing.assert_array_equal(a, b)
    (tmp_path / "onet.keras").unlink()
    with pytest.raises(DatasetError, match="onet.keras"):
        _start_from(new, tmp_path)


def test_student_widths_are_validated_and_recorded(tmp_path):
    pytest.importorskip("tensorflow")
    from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets

    with pytest.raises(ValueError, match="pnet widths"):
        DetectorStudentConfig(pnet=(16, 0, 32))
    with pytest.raises(ValueError, match="onet widths"):
        DetectorStudentConfig(onet=(32, 64))
    cfg = DetectorStudentConfig(pnet=(16, 24, 32))
    nets = build_student_nets(cfg)
    assert nets["pnet"].get_layer("c1_conv").filters == 16 and nets["pnet"].get_layer("s3_pw").filters == 32
    assert cfg.to_dict()["pnet"] == (16, 24, 32)


def test_crop_views_are_new_pictures_of_the_same_crops_and_the_teacher_relabels_them(lfw_images):
    """Online views: geometry off leaves each crop itself or its exact mirror; geometry on gives new
    pictures whose targets are the teacher's outputs on exactly those pixels (landmarks follow a
    mirror: the left eye of the mirrored face is the mirrored right eye)."""
    from facegate.convert.distill.detector_data import crop_views, relabel
    from facegate.edge.detect.boxes import crop_and_resize
    from facegate.edge.detect.mtcnn import split_outputs

    teacher = load_detector("mtcnn-teacher", fmt="tflite", config=CascadeConfig(min_face_size=20))
    images = [load_rgb(paths[0]) for paths in list(lfw_images.values())[:4]]
    crops = np.concatenate([crop_and_resize((img.astype(np.float32) - 127.5) / 128.0,
                                            np.array([teacher.detect(img)[0].box]), 48) for img in images])
    still = crop_views(crops, np.random.default_rng(0), 0.0, 0.0, 0.0, camera_share=0.0, low_res_share=0.0)
    mirrored = np.array([np.array_equal(v, c[:, ::-1]) and not np.array_equal(v, c) for v, c in zip(still, crops)])
    assert all(np.array_equal(v, c) or m for v, c, m in zip(still, crops, mirrored)) and mirrored.any()
    keys = ["prob", "box", "landmarks"]
    prob, _, marks = relabel(teacher.onet, still, keys)
    _, _, plain_marks = relabel(teacher.onet, crops, keys)
    assert (prob > 0.9).all()
    for m, got, plain in zip(mirrored, marks, plain_marks):   # x of left eye <-> 1 - x of right eye
        if m:
            assert abs(got[0] - (1 - plain[1])) < 0.05 and abs(got[1] - (1 - plain[0])) < 0.05
    moved = crop_views(crops, np.random.default_rng(1))
    assert moved.shape == crops.shape and moved.dtype == np.float32
    assert all(not np.allclose(v, c) for v, c in zip(moved, crops))
    assert moved.min() >= -1.0 and moved.max() <= 1.0
    # low resolution (a far face): the detail above the small size is gone
    sharp = crop_views(crops, np.random.default_rng(2), 0.0, 0.0, 0.0, camera_share=0.0, low_res_share=0.0)
    soft = crop_views(crops, np.random.default_rng(2), 0.0, 0.0, 0.0, camera_share=0.0, low_res_share=1.0)
    detail = lambda v: np.abs(np.diff(v, axis=1)).mean()   # noqa: E731
    assert all(detail(b) < 0.8 * detail(a) for a, b in zip(sharp, soft))
    out = split_outputs(teacher.onet.run([moved]))
    got = relabel(teacher.onet, moved, keys)
    np.testing.assert_allclose(got[0], out["prob"][:, 1:2])
    np.testing.assert_allclose(got[2], out["landmarks"])


def test_online_views_need_the_teacher(tmp_path):
    pytest.importorskip("tensorflow")
    from facegate.convert.distill.detector import DetectorDistillConfig, train_net
    from facegate.convert.students.mtcnn import build_student_nets

    data = {"x": np.zeros((4, 24, 24, 3), np.float16), "prob": np.zeros((4, 1), np.float32),
            "box": np.zeros((4, 4), np.float32)}
    cfg = DetectorDistillConfig(out=tmp_path, online_views=0.5, progress=False)
    with pytest.raises(ValueError, match="teacher"):
        train_net("rnet", build_student_nets()["rnet"], data, cfg)


def test_int8_student_keeps_a_float_face_score(lfw_images):
    """The committed int8 nets keep the final softmax float: an int8 softmax outputs multiples of
    1/256, so confident faces would tie and the ranking AP depends on would be lost (4 pt easy)."""
    from facegate.edge.detect.boxes import crop_and_resize
    from facegate.edge.detect.mtcnn import split_outputs

    det = load_detector(f"{STUDENT}-int8", fmt="tflite")
    teacher = load_detector("mtcnn-teacher", fmt="tflite", config=CascadeConfig(min_face_size=20))
    crops = []
    for paths in list(lfw_images.values())[:4]:
        img = load_rgb(paths[0])
        box = np.array([teacher.detect(img)[0].box])
        norm = (img.astype(np.float32) - 127.5) / 128.0
        crops += [crop_and_resize(norm, box + shift, 48) for shift in (0.0, 3.0, -3.0)]
    prob = split_outputs(det.onet.run([np.concatenate(crops)]))["prob"][:, 1]
    assert (prob > 0.9).mean() > 0.5
    off_grid = np.abs(prob * 256 - np.round(prob * 256)) > 1e-3
    assert off_grid.mean() > 0.5
    # confident faces keep distinct scores (an int8 softmax would tie them all at 255/256)
    assert len(np.unique(np.round(prob[prob > 0.99], 6))) >= 0.8 * int((prob > 0.99).sum())



@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_committed_keras_sources_are_the_shipped_nets(net):
    """convert/students/weights/mtcnn-student-<net>.keras must compute what the committed fp32
    TFLite file does (the P-Net source was once a stage older than the shipped file)."""
    pytest.importorskip("tensorflow")
    import keras

    from facegate.edge.backends import load_backend
    source = MODELS_DIR.parents[1] / "convert" / "students" / "weights" / f"mtcnn-student-{net}.keras"
    model = keras.saving.load_model(source, compile=False)
    size = {"pnet": 40, "rnet": 24, "onet": 48}[net]
    x = np.random.default_rng(0).uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    shipped = load_backend(MODELS_DIR / STUDENT / f"{net}.tflite", backend="litert").run([x])
    for a, b in zip(sorted(shipped, key=lambda o: o.shape[-1]), sorted((np.asarray(o) for o in model(x)),
                                                                        key=lambda o: o.shape[-1])):
        assert np.abs(a - b).max() < 1e-4


def test_committed_student_runs_at_its_own_tuned_thresholds():
    """The student's cards carry the cascade thresholds tuned on WIDER training images; the fp32 and
    int8 sets agree, and the teacher keeps the reference package's."""
    for name in (STUDENT, f"{STUDENT}-int8"):
        assert load_detector(name, fmt="tflite").config.thresholds == (0.3, 0.5, 0.6)
        assert load_detector(name, fmt="onnx").config.thresholds == (0.3, 0.5, 0.6)
    assert load_detector("mtcnn-teacher", fmt="tflite").config.thresholds == (0.6, 0.7, 0.8)


def test_factorised_student_tiny_run_starts_from_the_teacher(tmp_path):
    """`--factorise`: R-Net/O-Net split from the teacher and refit on their crops before training;
    with 0 epochs the saved nets are the refit ones and the summary records the fit."""
    pytest.importorskip("tensorflow")
    from facegate.apps.cli import main
    from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets

    run = tmp_path / "run"
    run.mkdir()
    build_student_nets(DetectorStudentConfig())["pnet"].save(run / "pnet.keras")   # P-Net given, skipped
    assert main(["distill", "detector", "--out", str(run), "--factorise", "0", "3", "2", "--epochs", "0",
                 "--max-images", "2", "--photos", "2", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["student"]["multiplier"] == [0, 3, 2]
    assert set(summary["nets"]["onet"]["refit_error"]) == {"conv2_pw", "conv3_pw", "conv4_pw", "fc5", "box",
                                                           "landmarks", "prob"}
    assert all(0 <= e < 1 for e in summary["nets"]["rnet"]["refit_error"].values())
    import keras
    onet = keras.saving.load_model(run / "onet.keras", compile=False)
    assert onet.get_layer("conv3_dw").get_config()["depth_multiplier"] == 2
