"""FaceNet teacher: Sandberg's 20170512-110547 Inception-ResNet-v1 (MS-Celeb-1M, 128-D) as ported to
Keras 2.1 by Taniai, rebuilt for Keras 3.

The h5's Lambda layers hold Python 3.6 bytecode that no current Python can load, so the graph is
rebuilt from the h5's `model_config` JSON with :class:`ScaleSum` in place of each Lambda
(`inputs[0] + inputs[1] * scale`) and the weights are set layer by layer by name from
`model_weights`. The result is saved once as a Keras 3 `.keras` file in the cache.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import keras
import numpy as np

from facegate.edge.downloads import cache_dir, facenet_h5
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

INPUT_SIZE = 160
EMBEDDING_DIM = 128
KERAS_FILENAME = "facenet_teacher.keras"


@keras.saving.register_keras_serializable(package="facegate")
class ScaleSum(keras.layers.Layer):
    """Residual scaling of Inception-ResNet blocks: inputs[0] + inputs[1] * scale."""

    def __init__(self, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


def _layer_from_config(class_name: str, cfg: dict) -> keras.layers.Layer:
    """Keras 3 layer for a Keras 2.1 layer config (only the classes this h5 uses)."""
    name = cfg["name"]
    L = keras.layers
    if class_name == "Conv2D":
        return L.Conv2D(cfg["filters"], tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]),
                        padding=cfg["padding"], dilation_rate=tuple(cfg["dilation_rate"]),
                        activation=cfg["activation"], use_bias=cfg["use_bias"], name=name)
    if class_name == "BatchNormalization":
        return L.BatchNormalization(axis=cfg["axis"], momentum=cfg["momentum"], epsilon=cfg["epsilon"],
                                    center=cfg["center"], scale=cfg["scale"], name=name)
    if class_name == "Activation":
        return L.Activation(cfg["activation"], name=name)
    if class_name == "Concatenate":
        return L.Concatenate(axis=cfg["axis"], name=name)
    if class_name == "MaxPooling2D":
        return L.MaxPooling2D(tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]), padding=cfg["padding"],
                              name=name)
    if class_name == "GlobalAveragePooling2D":
        return L.GlobalAveragePooling2D(name=name)
    if class_name == "Dropout":
        return L.Dropout(cfg["rate"], name=name)
    if class_name == "Dense":
        return L.Dense(cfg["units"], activation=cfg["activation"], use_bias=cfg["use_bias"], name=name)
    if class_name == "Lambda":
        scale = (cfg.get("arguments") or {}).get("scale")
        if scale is None:
            raise ModelError(f"Lambda layer {name} has no 'scale' argument; not a FaceNet ScaleSum")
        return ScaleSum(scale=scale, name=name)
    raise ModelError(f"layer class {class_name} ({name}) is not supported by the FaceNet rebuild")


def rebuild_from_h5(h5_path: str | Path) -> keras.Model:
    """Rebuild the functional graph from the h5's JSON and load every weight by layer name."""
    with h5py.File(h5_path, "r") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)["config"]
        tensors: dict[str, keras.KerasTensor] = {}
        layers: dict[str, keras.layers.Layer] = {}
        for spec in config["layers"]:
            cls, cfg, name = spec["class_name"], spec["config"], spec["name"]
            if cls == "InputLayer":
                shape = tuple(cfg["batch_input_shape"][1:])
                tensors[name] = keras.Input(shape=shape, name=name)
                continue
            layer = _layer_from_config(cls, cfg)
            nodes = spec["inbound_nodes"]
            if len(nodes) != 1:
                raise ModelError(f"layer {name} is shared ({len(nodes)} nodes); unsupported")
            inbound = [tensors[src[0]] for src in nodes[0]]
            tensors[name] = layer(inbound if len(inbound) > 1 else inbound[0])
            layers[name] = layer
        outputs = [tensors[o[0]] for o in config["output_layers"]]
        inputs = [tensors[i[0]] for i in config["input_layers"]]
        model = keras.Model(inputs[0], outputs[0], name="facenet_inception_resnet_v1")

        weights = f["model_weights"]
        loaded = 0
        for name, layer in layers.items():
            if not layer.weights:
                continue
            group = weights[name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            arrays = [np.asarray(group[n]) for n in names]
            if len(arrays) != len(layer.weights):
                raise ModelError(f"layer {name}: h5 has {len(arrays)} weights, model expects {len(layer.weights)}")
            layer.set_weights(arrays)
            loaded += 1
    log.info("FaceNet rebuilt: %d weighted layers, %d parameters", loaded, model.count_params())
    return model


def teacher_path() -> Path:
    return cache_dir() / "teachers" / KERAS_FILENAME


def load_teacher(rebuild: bool = False) -> keras.Model:
    """The FaceNet teacher as a Keras 3 model, rebuilt from the pinned h5 on first use."""
    path = teacher_path()
    if path.exists() and not rebuild:
        return keras.saving.load_model(path, custom_objects={"ScaleSum": ScaleSum}, compile=False)
    h5 = facenet_h5()
    log.info("rebuilding the FaceNet teacher from %s as a Keras 3 model (once, ~20 s; cached as %s)", h5.name, path)
    model = rebuild_from_h5(h5)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.keras")
    model.save(tmp)
    tmp.replace(path)
    return model
