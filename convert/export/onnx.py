"""Keras -> ONNX through tf2onnx, checked with onnx.checker."""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import onnx
import tensorflow as tf
import tf2onnx

log = logging.getLogger(__name__)


def export_onnx(model: keras.Model, path: str | Path, opset: int = 13) -> Path:
    """Write `model` as an .onnx file (batch and, for fully convolutional nets, spatial dims dynamic)."""
    if opset < 13:
        raise ValueError(f"ONNX opset must be >= 13, got {opset}")
    spec = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image")]
    # tf2onnx traces model.output_names; Keras 3 functional models expose them from the outputs
    if not hasattr(model, "output_names"):
        model.output_names = [o.name.split("/")[0] for o in model.outputs]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    log.info("wrote %s (opset %d)", path, opset)
    return path


def export_onnx_from_tflite(tflite_path: str | Path, path: str | Path, opset: int = 13) -> Path:
    """Convert a (full-integer) TFLite file into an ONNX graph with QuantizeLinear/DequantizeLinear
    nodes, so ONNX Runtime and TensorRT run the same int8 model the TFLite file holds."""
    if opset < 13:
        raise ValueError(f"ONNX opset must be >= 13, got {opset}")
    proto, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
    onnx.checker.check_model(proto)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    log.info("wrote %s from %s (opset %d)", path, Path(tflite_path).name, opset)
    return path
