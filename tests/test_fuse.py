"""Folding a linear conv into the 1x1 conv that alone reads it (convert/fuse.py): same outputs, fewer
layers, and only where it is exact and cheaper."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from facegate.convert.fuse import find_fusable, fuse_linear_convs

L = keras.layers
STUDENT = Path(__file__).resolve().parents[1] / "convert" / "students" / "weights" / "facenet-student.keras"


def _net() -> keras.Model:
    """Pairs that fold (a 3x3 stride-2 'same' conv into a 1x1 with an activation; a chain of three
    linear 1x1 convs) and pairs that must not."""
    rng = np.random.default_rng(0)
    inp = keras.Input((15, 15, 3))
    a = L.Conv2D(32, 3, strides=2, padding="same", name="a")(inp)   # linear 3x3 with border padding ...
    b = L.Conv2D(8, 1, activation="relu", name="b")(a)               # ... into a 1x1 that keeps its ReLU
    c = L.Conv2D(8, 1, name="c")(b)                                  # c -> d -> e: folded in two passes
    d = L.Conv2D(16, 1, name="d")(c)
    e = L.Conv2D(16, 1, name="e")(d)                                 # e is read twice (the sum): stays
    f = L.Conv2D(16, 1, activation="relu", name="f")(e)              # an activation: never a first layer
    s = L.Add(name="sum")([e, f])
    g = L.Conv2D(4, 1, name="g")(s)                                  # 16 -> 4 -> 32: folding would cost more
    h = L.Conv2D(32, 1, name="h")(g)
    k = L.Conv2D(4, 3, padding="same", name="k")(h)                  # h's reader is 3x3: stays
    i = L.Conv2D(4, 1, strides=2, name="i")(k)                       # a strided 1x1 reader: stays
    model = keras.Model(inp, L.GlobalAveragePooling2D()(i))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def test_only_exact_cheaper_disjoint_pairs_are_found():
    pairs = [(p.first, p.second) for p in find_fusable(_net())]
    assert pairs == [("a", "b"), ("c", "d")]          # d -> e waits for the next pass (d is taken)


def test_fusion_keeps_the_function_with_fewer_layers(tmp_path):
    model = _net()
    x = np.random.default_rng(1).uniform(-1, 1, (4, 15, 15, 3)).astype(np.float32)
    fused, summary = fuse_linear_convs(model)
    assert summary["pairs"] == ["a -> b", "c -> d", "d -> e"]
    names = [layer.name for layer in fused.layers]
    assert len(names) == len(model.layers) - 3 and not {"a", "c", "d"} & set(names)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-4)
    # b took a's 3x3 stride-2 kernel and kept its ReLU; e now reads b directly (8 -> 16)
    assert tuple(fused.get_layer("b").kernel_size) == (3, 3) and tuple(fused.get_layer("b").strides) == (2, 2)
    assert fused.get_layer("b").get_config()["activation"] == "relu"
    assert fused.get_layer("e").get_weights()[0].shape == (1, 1, 8, 16)
    # multiply-adds per image: a+b 8*8*(27*32 + 32*8) -> 8*8*27*8; c+d+e 8*8*(64 + 128 + 256) -> 8*8*128
    assert summary["macs_saved_per_image"] == 64 * (27 * 32 + 32 * 8 - 27 * 8) + 64 * (64 + 128 + 256 - 128)
    assert "a" in [layer.name for layer in model.layers]        # the source model is untouched
    fused.save(tmp_path / "fused.keras")
    again = keras.models.load_model(tmp_path / "fused.keras", compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(fused(x)), rtol=1e-6, atol=1e-6)


def test_a_model_with_nothing_to_fold_comes_back_as_is():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, L.Conv2D(4, 1, activation="relu")(L.Conv2D(4, 3, activation="relu")(inp)))
    same, summary = fuse_linear_convs(model)
    assert same is model and summary == {"fused_pairs": 0}


@pytest.mark.skipif(not STUDENT.exists(), reason="committed student missing")
def test_student_stem_pointwise_folds_into_the_first_expansion():
    """The pretrained peer's separable stem ends in a linear 64 -> 64 pointwise conv read only by the
    first bottleneck's 64 -> 128 expansion at 56x56: one fold, 12.8 M multiply-adds less, same embedding."""
    model = keras.models.load_model(STUDENT, compile=False)
    fused, summary = fuse_linear_convs(model)
    assert summary["pairs"] == ["peer_conv -> peer_conv2d_2_invresblock_0_conv"]
    assert summary["macs_saved_per_image"] == 56 * 56 * 64 * 64
    x = np.random.default_rng(2).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(model(x)), atol=1e-5)
