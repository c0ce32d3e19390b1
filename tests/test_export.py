"""Export: every format for a small embedder with parity asserted, the NaN trap, the format table,
cards and USAGE.md, threshold calibration with known answers."""

import numpy as np
import pytest

from facegate.calibration.thresholds import calibrate, far_key, identity_pair_scores, threshold_at_far
from facegate.convert.export.formats import resolve_format, validate
from facegate.edge.cards import InputSpec, ModelCard, load_card, write_card
from facegate.edge.errors import ModelError, UsageError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_embedder(tmp_path_factory):
    """A small trained-looking embedder saved as .keras with its card (what a student looks like)."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(128, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(256)(x)  # ~40k parameters: weights dominate the file, as in a real model
    model = keras.Model(inp, out, name="tiny")
    path = tmp_path_factory.mktemp("src") / "tiny.keras"
    model.save(path)
    card = ModelCard(name="tiny-embedder", task="embedding", file="", sha256="",
                     input=InputSpec(size=112, normalisation="mean127.5_div128", alignment="similarity112"),
                     outputs=[{"name": "embedding", "dim": 256}], format="keras", metric="cosine",
                     thresholds={"1e-2": 0.3, "1e-3": 0.5})
    write_card(card, path)
    return path


@pytest.mark.parametrize("fmt,quant", [("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"),
                                       ("tflite", "int8"), ("android", "fp32"), ("onnx", "fp32"),
                                       ("onnx", "int8")])
def test_runnable_formats_keep_parity(small_embedder, tmp_path, fmt, quant):
    from facegate.convert.export.model import PARITY_FLOORS, export_model
    r = export_model(str(small_embedder), fmt, quant, tmp_path, lfw_pairs=0, progress=False)
    card = load_card(r.path)  # checksum verified
    p = card.accuracy["parity_vs_source"]
    assert p["faces"] >= 20 and p["cosine_mean"] >= PARITY_FLOORS[quant] and p["cosine_min"] > 0.9
    assert card.thresholds == {"1e-2": 0.3, "1e-3": 0.5} and card.embedding_dim == 256
    assert card.accuracy["size_bytes"] == r.path.stat().st_size
    usage = (tmp_path / f"{r.path.name}.USAGE.md").read_text()
    assert "112x112" in usage and "L2-normalise" in usage and "0.5000" in usage


def test_int8_with_integer_io_runs_through_the_backend(small_embedder, tmp_path):
    from facegate.convert.export.model import export_model
    from facegate.edge.backends import load_backend
    r = export_model(str(small_embedder), "tflite", "int8", tmp_path, io_type="int8", lfw_pairs=0, progress=False)
    be = load_backend(r.path)
    assert be.inputs[0].dtype == "int8" and be.outputs[0].dtype == "int8"
    assert r.parity["cosine_mean"] >= 0.98
    fp32 = export_model(str(small_embedder), "tflite", "fp32", tmp_path, lfw_pairs=0, progress=False)
    assert r.path.stat().st_size < fp32.path.stat().st_size / 2.5


def test_coreml_and_saved_model_are_checked_by_spec(small_embedder, tmp_path):
    from facegate.convert.export.model import export_model
    r = export_model(str(small_embedder), "ios", "fp16", tmp_path, lfw_pairs=0, progress=False)
    assert r.path.suffix == ".mlpackage" and r.path.is_dir()
    card = load_card(r.path)
    spec = card.accuracy["parity_vs_source"]["spec"]
    assert spec["inputs"][0]["name"] == "image" and spec["inputs"][0]["shape"] == [1, 112, 112, 3]
    assert spec["outputs"][0]["shape"][-1] == 256
    assert "macOS" in card.notes
    sm = export_model(str(small_embedder), "saved_model", "fp32", tmp_path, lfw_pairs=0, progress=False)
    assert (sm.path / "saved_model.pb").exists()


def test_nan_trap_is_caught(small_embedder, tmp_path):
    """TFLiteConverter.from_concrete_functions on a Keras 3 model writes a weightless file: NaN."""
    import keras
    import tensorflow as tf

    from facegate.convert.export.model import check_parity
    from facegate.edge.backends import load_backend
    model = keras.saving.load_model(small_embedder)
    fn = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec((1, 112, 112, 3), tf.float32))
    blob = tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    bad = tmp_path / "weightless.tflite"
    bad.write_bytes(blob)
    x = np.random.default_rng(0).normal(size=(1, 112, 112, 3)).astype(np.float32)
    out = load_backend(bad).run([x])[0]
    ref = model(x).numpy()
    if np.all(np.isfinite(out)) and np.allclose(out, ref, atol=1e-4):
        # this TensorFlow build writes the weights: the same check must then pass the file
        assert check_parity(ref / np.linalg.norm(ref), out / np.linalg.norm(out), 0.999, bad.name)["cosine_min"] > 0.999
    else:
        with pytest.raises(ModelError):
            check_parity(ref / np.linalg.norm(ref), out / np.linalg.norm(out), 0.999, bad.name)


def test_parity_check_refuses_non_finite_and_unfaithful_outputs():
    """The export's last line of defence, fed the outputs the weightless-file trap produces (NaN), an
    overflow (inf) and a file that computes something else (cosine below the floor)."""
    from facegate.convert.export.model import check_parity
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(8, 16)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert check_parity(ref, ref.copy(), 0.999, "same")["cosine_mean"] == pytest.approx(1.0, abs=1e-6)
    for poison in (np.nan, np.inf):
        bad = ref.copy()
        bad[3, 5] = poison
        with pytest.raises(ModelError, match="NaN/inf"):
            check_parity(ref, bad, 0.999, "poisoned")
    other = rng.normal(size=ref.shape).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    with pytest.raises(ModelError, match="below the floor"):
        check_parity(ref, other, 0.98, "unfaithful")


def test_format_table_validation():
    assert resolve_format("Android").name == "tflite" and resolve_format("ios").name == "coreml"
    with pytest.raises(UsageError, match="Did you mean 'onnx'"):
        resolve_format("onxx")
    with pytest.raises(UsageError, match="supports fp32"):
        validate(resolve_format("onnx"), "fp16")
    from facegate.apps.cli import main
    assert main(["export", "--model", "facenet-teacher", "--format", "tflight"]) == 2
    assert main(["export", "--model", "facenet-teacher", "--format", "coreml", "--quant", "int8"]) == 2


def test_threshold_calibration_known_answers():
    impostor = np.arange(1000) / 1000.0          # 0.000 .. 0.999, one each
    genuine = np.array([0.5, 0.9, 0.995, 0.9995])
    t = threshold_at_far(impostor, 1e-2)         # 10 impostors may pass: those >= 0.990
    assert 0.989 < t <= 0.990 + 1e-9
    table = calibrate(genuine, impostor, fars=(1e-1, 1e-2, 1e-4), min_false_accepts=10)
    assert set(table) == {"1e-1", "1e-2"}        # 1e-4 is not measurable with 1000 impostors
    assert table["1e-2"]["far_measured"] == pytest.approx(0.01)
    assert table["1e-2"]["tar"] == 0.5 and table["1e-1"]["tar"] == 0.75
    assert far_key(1e-3) == "1e-3"
    g, i = identity_pair_scores(np.eye(3, dtype=np.float32)[[0, 0, 1]], ["a", "a", "b"])
    assert g.tolist() == [1.0] and i.tolist() == [0.0, 0.0]


def test_onnx_int8_is_a_qdq_graph(small_embedder, tmp_path):
    import onnx

    from facegate.convert.export.model import export_model
    r = export_model(str(small_embedder), "onnx", "int8", tmp_path, lfw_pairs=0, progress=False)
    ops = {n.op_type for n in onnx.load(str(r.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert r.parity["cosine_mean"] >= 0.98
    assert not list(tmp_path.glob("*.int8-source.tflite"))  # the intermediate file is cleaned up
