"""The face pipeline and its quality gates on real photos, manipulated to fail each gate."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from facegate.edge.errors import ConfigError, NoFaceError
from facegate.edge.face.pipeline import Pipeline, PipelineConfig
from facegate.edge.face.quality import QualityConfig, assess, pose_from_landmarks
from facegate.edge.images import load_rgb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face_photo(lfw_images):
    return load_rgb(lfw_images["Al_Gore"][0] if "Al_Gore" in lfw_images else next(iter(lfw_images.values()))[0])


def test_embed_returns_unit_vector_and_timings(pipeline, face_photo):
    emb = pipeline.embed(face_photo)
    assert emb.vector.shape == (128,) and np.linalg.norm(emb.vector) == pytest.approx(1.0, abs=1e-5)
    assert emb.quality.ok, emb.quality.reasons
    assert set(emb.timings_ms) == {"detect", "align_quality", "embed"}


def test_same_person_scores_higher_through_the_pipeline(pipeline, lfw_images):
    names = list(lfw_images)[:3]
    v = {n: [pipeline.embed(load_rgb(p), require_quality=False).vector for p in lfw_images[n][:2]] for n in names}
    same = min(float(v[n][0] @ v[n][1]) for n in names)
    diff = max(float(v[a][0] @ v[b][0]) for a in names for b in names if a < b)
    assert same > diff


def test_no_face_is_a_clear_error(pipeline):
    with pytest.raises(NoFaceError, match="no face"):
        pipeline.embed(np.full((240, 320, 3), 200, np.uint8))


def test_each_quality_gate_names_its_reason(pipeline, face_photo):
    face = pipeline.detector.detect(face_photo)[0]
    from facegate.edge.face.align import align_face
    crop = align_face(face_photo, face, 112, "similarity112")
    assert assess(face, crop).ok
    blurred = cv2.GaussianBlur(crop, (0, 0), 4)
    assert any("blurred" in r for r in assess(face, blurred).reasons)
    dark = (crop * 0.15).astype(np.uint8)
    assert any("too dark" in r for r in assess(face, dark).reasons)
    bright = np.clip(crop.astype(int) + 200, 0, 255).astype(np.uint8)
    assert any("over-exposed" in r or "clipped" in r for r in assess(face, bright).reasons)
    small = assess(face, crop, QualityConfig(min_inter_ocular=500))
    assert any("too small" in r for r in small.reasons)


def test_pose_from_landmarks_tracks_rotation(pipeline, face_photo):
    h, w = face_photo.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0)
    rotated = cv2.warpAffine(face_photo, m, (w, h))
    faces = pipeline.detector.detect(rotated)
    assert faces
    pose = pose_from_landmarks(faces[0])
    assert abs(abs(pose["roll_deg"]) - 35) < 8
    with pytest.raises(NoFaceError, match="tilted"):
        pipeline.embed(rotated)
    assert abs(pose["yaw"]) < 0.35  # rotation in the image plane is not mistaken for a turned head


def test_faces_lists_every_face_with_quality(pipeline, wider_dir):
    img = load_rgb(sorted((wider_dir / "images").rglob("*.jpg"))[0])
    results = pipeline.faces(img)
    assert len(results) > 2
    size = pipeline.embedder.input_size        # the default embedder (the student): 112
    assert size == 112 and all(r.crop.shape == (size, size, 3) for r in results)
    assert any(not r.quality.ok for r in results)  # a crowd photo has small/turned faces


def test_config_from_toml_and_errors(tmp_path, embedder_path):
    good = tmp_path / "door.toml"
    good.write_text(f'[pipeline]\nembedder = "{embedder_path}"\nmin_face_size = 60\nface_policy = "largest"\n'
                    '[pipeline.quality]\nmax_yaw = 0.3\nbrightness_range = [30, 230]\n')
    cfg = PipelineConfig.from_toml(good)
    assert cfg.min_face_size == 60 and cfg.quality.max_yaw == 0.3 and cfg.quality.brightness_range == (30, 230)
    pipe = Pipeline.from_config(good)
    assert pipe.detector.config.min_face_size == 60
    # the cascade runs with exactly the settings the config names (bench pipeline times the same ones)
    assert pipe.detector.config == replace(cfg.cascade_config(), thresholds=pipe.detector.config.thresholds)
    assert PipelineConfig().cascade_config().chained_pyramid and PipelineConfig().cascade_config().min_face_size == 40
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline]\nmin_face = 60\n")
    with pytest.raises(ConfigError, match="unknown pipeline setting.*min_face"):
        PipelineConfig.from_toml(bad)
    bad.write_text("[pipeline.quality]\nmax_jaw = 1\n")
    with pytest.raises(ConfigError, match="max_jaw"):
        PipelineConfig.from_toml(bad)
    bad.write_text("[pipeline\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        PipelineConfig.from_toml(bad)


def test_threads_mean_the_embedder_and_the_door_runs_its_nets_on_one():
    """`threads` is the embedder's; a door's detector nets run on one thread (measured faster there);
    elsewhere the nets follow `threads` unless `detector_threads` says otherwise."""
    from facegate.edge.door.config import DoorPipelineConfig
    door = Pipeline.from_config(DoorPipelineConfig(threads=2))
    assert door.embedder.backend._threads == 2 and door.detector.pnet._threads == 1
    photo = Pipeline.from_config(PipelineConfig(threads=2))
    assert photo.detector.pnet._threads == 2 and photo.embedder.backend._threads == 2
    assert Pipeline.from_config(PipelineConfig(threads=2, detector_threads=1)).detector.rnet._threads == 1
