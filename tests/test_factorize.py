"""Detector students factorised from the teacher: exact at full rank, refit closes a truncation,
and detectors carry their own cascade thresholds in their cards."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facegate.edge.detect import CascadeConfig
from facegate.edge.registry import MODELS_DIR, load_detector


def _random_teacher(net: str, seed: int = 0):
    """A teacher-layout net with random weights: the factorisation must not depend on the wheel."""
    from facegate.convert.teachers.mtcnn import BUILDERS
    model = BUILDERS[net]()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) if w.ndim > 1 else
                       rng.uniform(0.0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _inputs(net: str, n: int = 4, seed: int = 1) -> np.ndarray:
    size = {"pnet": 30, "rnet": 24, "onet": 48}[net]
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_separable_split_is_exact_at_full_rank_and_keeps_the_top_energy_below():
    pytest.importorskip("tensorflow")
    from facegate.convert.students.factorize import separable_split
    kernel = np.random.default_rng(0).normal(size=(3, 3, 5, 7)).astype(np.float32)
    dw, pw, kept = separable_split(kernel, 9)
    rebuilt = np.einsum("hwcm,cmo->hwco", dw, pw[0, 0].reshape(5, 9, 7))
    assert np.abs(rebuilt - kernel).max() < 1e-5 and kept == pytest.approx(1.0)
    dw1, pw1, kept1 = separable_split(kernel, 1)
    assert dw1.shape == (3, 3, 5, 1) and pw1.shape == (1, 1, 5, 7)
    assert 1 / 7 < kept1 < 1.0       # the best rank-1 part of a random 9x7 matrix: more than an even share


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_full_rank_factorisation_reproduces_the_teacher(net):
    """Multiplier k*k: the depthwise-separable student computes the teacher's function exactly
    (the dense layer's rows are reordered for the teacher's Caffe-order flatten)."""
    pytest.importorskip("tensorflow")
    from facegate.convert.students.factorize import transfer
    from facegate.convert.students.mtcnn import build_factorised
    teacher = _random_teacher(net)
    student = build_factorised(net, 9)
    transfer(student, teacher)
    x = _inputs(net)
    for a, b in zip(teacher(x), student(x)):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max() + 1e-6
    assert any(layer.__class__.__name__ == "DepthwiseConv2D" for layer in student.layers)


def test_refit_recovers_most_of_what_truncation_lost():
    pytest.importorskip("tensorflow")
    from facegate.convert.students.factorize import refit, transfer
    from facegate.convert.students.mtcnn import build_factorised
    teacher = _random_teacher("onet")
    student = build_factorised("onet", 2)
    transfer(student, teacher)
    x, probe = _inputs("onet", 64, seed=2), _inputs("onet", 16, seed=3)

    def err() -> float:
        t, s = teacher(probe)[1], student(probe)[1]      # landmarks: a linear head
        return float(np.linalg.norm(np.asarray(t) - np.asarray(s)) / np.linalg.norm(np.asarray(t)))

    before = err()
    errors = refit(student, teacher, x)
    assert set(errors) == {"conv2_pw", "conv3_pw", "conv4_pw", "fc5", "box", "landmarks", "prob"}
    assert err() < 0.8 * before


def test_factorised_nets_need_the_teacher_widths():
    pytest.importorskip("tensorflow")
    from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets
    with pytest.raises(ValueError, match="teacher's"):
        DetectorStudentConfig(rnet=(32, 64, 96, 128), multiplier=(0, 3, 0))
    with pytest.raises(ValueError, match="multiplier"):
        DetectorStudentConfig(multiplier=(1, 2))
    nets = build_student_nets(DetectorStudentConfig(pnet=(16, 24, 32), multiplier=(0, 2, 3)))
    assert nets["pnet"].get_layer("s2_dw")                       # designed P-Net
    assert nets["rnet"].get_layer("conv2_dw").get_config()["depth_multiplier"] == 2
    assert nets["onet"].get_layer("conv4_dw").get_config()["depth_multiplier"] == 3


def test_cards_carry_the_cascade_thresholds_and_an_explicit_config_wins(tmp_path):
    src = MODELS_DIR / "mtcnn-teacher"
    folder = tmp_path / "tuned"
    shutil.copytree(src, folder)
    assert load_detector(str(folder), fmt="tflite").config.thresholds == (0.6, 0.7, 0.8)
    for net, t in (("pnet", 0.35), ("rnet", 0.65), ("onet", 0.75)):
        card = folder / f"{net}.tflite.json"
        data = json.loads(card.read_text())
        data["thresholds"] = {"face": t}
        card.write_text(json.dumps(data))
    assert load_detector(str(folder), fmt="tflite").config.thresholds == (0.35, 0.65, 0.75)
    mine = load_detector(str(folder), fmt="tflite", config=CascadeConfig(min_face_size=40))
    assert mine.config.thresholds == (0.35, 0.65, 0.75) and mine.config.min_face_size == 40
    assert load_detector(str(folder), fmt="tflite",
                         config=CascadeConfig(thresholds=(0.5, 0.5, 0.5))).config.thresholds == (0.5, 0.5, 0.5)
