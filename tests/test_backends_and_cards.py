"""Backends agree with each other on the same model; cards refuse files that do not match."""
import shutil

import numpy as np
import pytest
from conftest import TEACHER_DETECTOR

from facegate.edge.backends import load_backend
from facegate.edge.cards import InputSpec, ModelCard, load_card, write_card
from facegate.edge.errors import ChecksumError, ModelError
from facegate.edge.registry import load_detector


@pytest.mark.parametrize("net,shape", [("pnet", (2, 31, 45, 3)), ("rnet", (7, 24, 24, 3)), ("onet", (3, 48, 48, 3))])
def test_litert_and_onnxruntime_agree(net, shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    a = load_backend(TEACHER_DETECTOR / f"{net}.tflite").run([x])
    b = load_backend(TEACHER_DETECTOR / f"{net}.onnx").run([x])
    assert [o.shape for o in a] == [o.shape for o in b]
    for oa, ob in zip(a, b):
        np.testing.assert_allclose(oa, ob, atol=1e-4)
    probs = a[-1]
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # softmax output really is last


def test_pnet_handles_changing_input_sizes():
    """P-Net is fully convolutional: output grid = ceil((n - 2) / 2) - 4 for every input size."""
    be = load_backend(TEACHER_DETECTOR / "pnet.tflite")
    for h, w in [(12, 12), (100, 60), (33, 200), (12, 12)]:
        box, prob = be.run([np.zeros((1, h, w, 3), np.float32)])
        grid = (-(-(h - 2) // 2) - 4, -(-(w - 2) // 2) - 4)
        assert box.shape == (1, *grid, 4)
        assert prob.shape == (1, *grid, 2)


def test_litert_keeps_a_prepared_interpreter_per_batch_and_bounds_large_ones():
    """R-Net's batch is the candidate count, which changes every frame: each small batch keeps its own
    interpreter (no re-preparing when a count comes back), large batches share one, and every
    answer equals the crop run alone."""
    be = load_backend(TEACHER_DETECTOR / "rnet.tflite")
    crops = np.random.default_rng(1).normal(size=(80, 24, 24, 3)).astype(np.float32)
    alone = np.concatenate([be.run([crops[i:i + 1]])[-1] for i in range(len(crops))])
    interpreters = {1: {id(be._interp)}}
    for n in (3, 5, 3, 40, 80, 5, 40, 1):
        probs = be.run([crops[:n]])[-1]
        np.testing.assert_allclose(probs, alone[:n], atol=1e-5)
        interpreters.setdefault(n, set()).add(id(be._interp))
    assert len(interpreters[3]) == 1 and len(interpreters[5]) == 1  # reused, not rebuilt
    assert interpreters[40] == interpreters[80]                     # one shared large-batch interpreter
    assert len({i for ids in interpreters.values() for i in ids}) == 4   # batches 1, 3, 5 and "large"


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_backend(tmp_path / "nope.tflite")
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"x")
    with pytest.raises(ModelError, match="no backend runs"):
        load_backend(bogus)


def test_garbage_tflite_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelError):
        load_backend(bad)


def test_committed_cards_match_their_files():
    for f in sorted(TEACHER_DETECTOR.glob("*net.*")):
        if f.suffix == ".json":
            continue
        card = load_card(f)
        assert card.file == f.name and card.task == f"mtcnn-{f.stem}"
        assert card.accuracy["max_abs_diff_vs_keras"] < 1e-4


def test_card_refuses_a_modified_model(tmp_path):
    for name in ("pnet.tflite", "pnet.tflite.json"):
        shutil.copy(TEACHER_DETECTOR / name, tmp_path / name)
    model = tmp_path / "pnet.tflite"
    load_card(model)  # intact copy loads
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="does not match its card"):
        load_card(model)


def test_detector_refuses_tampered_set(tmp_path):
    folder = tmp_path / "mtcnn-copy"
    shutil.copytree(TEACHER_DETECTOR, folder)
    load_detector(str(folder), fmt="onnx")
    with open(folder / "onet.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ChecksumError):
        load_detector(str(folder), fmt="onnx")


def test_card_round_trip_and_missing_card(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    card = ModelCard(name="m", task="embedding", file="", sha256="", input=InputSpec(size=112),
                     outputs=[{"name": "embedding", "dim": 128}], metric="cosine", thresholds={"1e-3": 0.42})
    write_card(card, model)
    loaded = load_card(model)
    assert loaded.embedding_dim == 128 and loaded.thresholds == {"1e-3": 0.42}
    with pytest.raises(ModelError, match="no model card"):
        load_card(tmp_path / "other.onnx")
    with pytest.raises(ModelError, match="normalisation"):
        InputSpec(size=112, normalisation="bogus")
