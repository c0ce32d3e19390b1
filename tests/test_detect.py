"""The edge cascade on real photos, bad inputs, and parity with the reference mtcnn package."""
import numpy as np
import pytest

from facegate.convert.evaluate.wider import read_gt_txt
from facegate.edge.detect.boxes import pairwise_overlap
from facegate.edge.detect.face import pick_face
from facegate.edge.errors import ImageError
from facegate.edge.images import as_rgb_uint8, load_rgb


def test_one_face_in_each_lfw_photo(detector, lfw_images):
    for paths in lfw_images.values():
        img = load_rgb(paths[0])
        faces = detector.detect(img)
        face = pick_face(faces, img.shape)
        assert face is not None and face.score > 0.9
        cx, cy = face.center
        assert abs(cx - 125) < 25 and abs(cy - 125) < 30  # deep-funneled LFW is face-centred
        assert 50 < face.width < 160
        le, re, nose = face.landmarks[:3]
        assert le[0] < nose[0] < re[0]  # eyes either side of the nose
        assert nose[1] > le[1] and nose[1] > re[1]


def test_onnx_and_tflite_cascades_agree(lfw_images):
    from facegate.edge.registry import load_detector
    img = load_rgb(next(iter(lfw_images.values()))[0])
    a = load_detector(fmt="tflite").detect(img)
    b = load_detector(fmt="onnx").detect(img)
    assert len(a) == len(b) >= 1
    np.testing.assert_allclose(a[0].box, b[0].box, atol=0.05)
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=0.05)


def test_wider_detections_overlap_ground_truth(detector, wider_dir):
    gt = read_gt_txt(wider_dir / "wider_face_val_bbx_gt.txt")
    rel = "0--Parade/0_Parade_marchingband_1_353.jpg"
    if not (wider_dir / "images" / rel).exists():
        rel = next(k for k in sorted(gt) if (wider_dir / "images" / k).exists() and len(gt[k]) < 10)
    boxes = gt[rel].copy()
    boxes[:, 2:] += boxes[:, :2]
    large = boxes[(boxes[:, 2] - boxes[:, 0]) >= 40]
    faces = detector.detect(load_rgb(wider_dir / "images" / rel))
    assert faces, "no detections on a WIDER image"
    found = np.array([f.box for f in faces])
    if len(large):
        best = pairwise_overlap(large, found).max(axis=1)
        assert np.mean(best > 0.5) >= 0.8, f"large faces missed: IoUs {best}"
    # detections are mostly real faces
    precision = np.mean(pairwise_overlap(found, boxes).max(axis=1) > 0.3)
    assert precision >= 0.7


def test_blank_and_tiny_images(detector):
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    with pytest.raises(ImageError, match="too small"):
        detector.detect(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match="HxWx3"):
        as_rgb_uint8(np.zeros((10, 10, 4), np.uint8))


def test_config_limits_faces_and_validates(detector, wider_dir):
    from facegate.edge.detect import CascadeConfig
    rel = sorted((wider_dir / "images").rglob("*.jpg"))[0]
    img = load_rgb(rel)
    many = detector.detect(img)
    assert len(many) > 2
    two = detector.with_config(max_faces=2).detect(img)
    assert len(two) == 2 and two[0].score >= two[1].score
    big_only = detector.with_config(min_face_size=80).detect(img)
    assert all(f.width >= 40 for f in big_only) and len(big_only) < len(many)
    with pytest.raises(ValueError):
        CascadeConfig(min_face_size=5)


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"\x89PNG\r\n garbage", "not a readable image")])
def test_bad_image_files(tmp_path, content, match):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=match):
        load_rgb(p)
    with pytest.raises(ImageError, match="not found"):
        load_rgb(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_rgb(tmp_path)


def test_parity_with_reference_mtcnn_package(detector, lfw_images, wider_dir):
    """Same detections as `mtcnn` 1.0.0 on the same images: IoU >= 0.9, landmarks within 2 px."""
    ref_pkg = pytest.importorskip("mtcnn")
    ref = ref_pkg.MTCNN()
    paths = [p[0] for p in lfw_images.values()][:3] + sorted((wider_dir / "images").rglob("*.jpg"))[:4]
    compared = 0
    for path in paths:
        img = load_rgb(path)
        r = ref.detect_faces(img, output_type="numpy", box_format="xyxy")
        ours = detector.detect(img)
        assert len(ours) == len(r), f"{path.name}: {len(ours)} faces vs reference {len(r)}"
        if not len(r):
            continue
        ov = pairwise_overlap(r[:, 1:5], np.array([f.box for f in ours]))
        match = ov.argmax(axis=1)
        assert ov.max(axis=1).min() >= 0.9, f"{path.name}: IoU {ov.max(axis=1).min():.3f}"
        ref_lm = np.stack([r[:, 6:11], r[:, 11:16]], axis=2)
        our_lm = np.stack([ours[j].landmarks for j in match])
        assert np.abs(ref_lm - our_lm).max() <= 2.0
        compared += len(r)
    assert compared >= 10


def test_chained_pyramid_finds_the_same_faces(detector, lfw_images, wider_dir):
    """Resizing each pyramid level from the previous one (the door default) must not move faces:
    same faces as the reference-parity pyramid on LFW portraits and a crowded WIDER photo."""
    chained = detector.with_config(chained_pyramid=True)
    for paths in list(lfw_images.values())[:3]:
        img = load_rgb(paths[0])
        a, b = detector.detect(img), chained.detect(img)
        assert len(a) == len(b) >= 1
        assert pairwise_overlap(np.array([f.box for f in a]), np.array([f.box for f in b])).max(axis=1).min() > 0.85
    img = load_rgb(sorted((wider_dir / "images").rglob("*.jpg"))[0])
    a, b = detector.detect(img), chained.detect(img)
    assert abs(len(a) - len(b)) <= max(1, len(a) // 10)
    big = [f.box for f in a if f.box[2] - f.box[0] >= 40]
    if big:
        assert (pairwise_overlap(np.array(big), np.array([f.box for f in b])).max(axis=1) > 0.7).all()


def test_door_pipeline_uses_the_chained_pyramid():
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig
    assert Pipeline.from_config(PipelineConfig()).detector.config.chained_pyramid
    assert not Pipeline.from_config(PipelineConfig(chained_pyramid=False)).detector.config.chained_pyramid
