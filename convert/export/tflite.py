"""Keras -> TFLite.

Uses `TFLiteConverter.from_keras_model`. Never `from_concrete_functions` on a Keras 3 model: it
writes a file without weights whose outputs are NaN (seen with TensorFlow 2.21; the export's parity check
refuses NaN outputs, tests/test_export.py).
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)
T = TypeVar("T")

QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8")


def _printing_to_log(call: Callable[[], T]) -> T:
    """Run `call` with what it prints on stdout sent to the debug log: Keras 3's path through the
    converter exports a SavedModel and prints its signature, one TensorSpec line per variable
    (about 490 for FaceNet), which is noise to the person exporting (`facegate -v` shows it)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = call()
    if buffer.getvalue().strip():
        log.debug("converter output:\n%s", buffer.getvalue().rstrip())
    return result


def export_tflite(model: keras.Model, path: str | Path, quant: str = "fp32",
                  representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
                  io_type: str = "float", float_ops: tuple[str, ...] = (), **_) -> Path:
    """Write `model` as a .tflite file with the given quantisation and return the path.

    int8 is full-integer (every op int8, calibrated on `representative`); with io_type='int8' the
    input and output tensors are int8 too (the caller quantises with the scale/zero-point in the
    file; facegate's LiteRT backend does this itself), else they stay float32. `float_ops` (TFLite
    op names, e.g. "SOFTMAX") stay float inside an int8 model: an int8 softmax has steps of 1/256,
    so every score above 0.996 ties and the order of confident detections is lost.
    """
    if io_type not in ("float", "int8"):
        raise ValueError(f"io_type must be 'float' or 'int8', not {io_type!r}")
    if io_type == "int8" and quant != "int8":
        raise ValueError("int8 input/output tensors need --quant int8")
    if quant not in QUANTIZATIONS:
        raise ValueError(f"TFLite quantisation must be one of {QUANTIZATIONS}, not {quant!r}")
    converter = _printing_to_log(lambda: tf.lite.TFLiteConverter.from_keras_model(model))
    if quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quant == "int8":
        if representative is None:
            raise ValueError("int8 export needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if quant == "int8" and float_ops:
        if io_type == "int8":
            raise ValueError("float_ops need float input/output tensors")
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                             debug_options=options)
        blob = _printing_to_log(debugger.get_nondebug_quantized_model)
    else:
        blob = _printing_to_log(converter.convert)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(blob)
    tmp.replace(path)
    log.info("wrote %s (%.1f kB, %s)", path, len(blob) / 1024, quant)
    return path
