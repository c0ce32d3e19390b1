"""The committed student embedder: the runtime's default, loads through its cards on each backend,
lives in the teacher's embedding space and separates people on real photos."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from facegate.edge.align import align_face
from facegate.edge.cards import load_card
from facegate.edge.detect.face import pick_face
from facegate.edge.embed import Embedder
from facegate.edge.images import load_rgb
from facegate.edge.registry import COMMITTED_EMBEDDERS, MODELS_DIR, default_embedder_path

STUDENT_DIR = MODELS_DIR / "facenet-student"
FILES = ["facenet-student_int8.tflite", "facenet-student_fp16.tflite", "facenet-student_fp32.onnx",
         "facenet-student_int8.onnx"]


def test_student_is_the_out_of_the_box_embedder(tmp_path, monkeypatch):
    """Without a teacher export (a board installed from PyPI) the committed student is the default."""
    assert COMMITTED_EMBEDDERS and COMMITTED_EMBEDDERS[0] == "facenet-student/facenet-student_fp16.tflite"
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "empty-cache"))
    assert default_embedder_path() == MODELS_DIR / COMMITTED_EMBEDDERS[0]
    size = (STUDENT_DIR / "facenet-student_int8.tflite").stat().st_size
    assert size <= 2_000_000, f"int8 student is {size} bytes; the budget is 2 MB"


@pytest.mark.parametrize("name", FILES)
def test_committed_files_match_their_cards(name):
    card = load_card(STUDENT_DIR / name)       # raises on a checksum mismatch
    assert card.task == "embedding" and card.embedding_dim == 128
    assert card.input.size == 112 and card.input.alignment == "similarity112"
    assert card.input.normalisation == "mean127.5_div128"
    assert {"1e-2", "1e-3"} <= set(card.thresholds)
    assert "lfw" in card.accuracy and card.accuracy["lfw"]["pairs"] == 6000
    assert card.accuracy["parity_vs_source"]["cosine_mean"] >= 0.98


def _crops(paths, detector, size=112, alignment="similarity112"):
    out = []
    for p in paths:
        img = load_rgb(p)
        out.append(align_face(img, pick_face(detector.detect(img), img.shape), size, alignment))
    return np.stack(out)


@pytest.mark.parametrize("name", FILES)
def test_student_separates_people_on_real_photos(name, lfw_images, detector):
    emb = Embedder.from_file(STUDENT_DIR / name)
    people = list(lfw_images.items())
    paths = [p for _, ps in people for p in ps[:2]]
    labels = [n for n, ps in people for _ in ps[:2]]
    e = emb.embed(_crops(paths, detector))
    same, diff = [], []
    for i, j in itertools.combinations(range(len(paths)), 2):
        (same if labels[i] == labels[j] else diff).append(float(e[i] @ e[j]))
    assert np.mean(same) > np.mean(diff) + 0.2
    assert np.mean(np.array(same)[:, None] > np.array(diff)[None, :]) > 0.9      # pairwise AUC


def test_student_lives_in_the_teacher_space(lfw_images, detector):
    """A gallery enrolled with the teacher must still recognise people probed with the student."""
    pytest.importorskip("tensorflow")
    from facegate.convert.registry import resolve_embedder
    teacher = resolve_embedder("facenet-teacher")
    student = Embedder.from_file(STUDENT_DIR / FILES[0])
    paths = [ps[0] for ps in lfw_images.values()]
    t = teacher.embed(_crops(paths, detector, 160, "margin32"))
    s = student.embed(_crops(paths, detector))
    cross = s @ t.T
    assert np.all(np.argmax(cross, axis=1) == np.arange(len(paths)))    # each student probe finds its teacher twin
    assert float(np.mean(np.diag(cross))) > 0.5        # held-out mean cosine to the teacher: 0.71
