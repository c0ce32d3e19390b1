"""LiteRT (ai-edge-litert) backend for .tflite files: the default on boards.

Outputs are returned in the order of the model's serving signature (output_0, output_1, ...), which
is the Keras output order; raw interpreter output order is not guaranteed to match it. Dynamic
input shapes (P-Net runs on every pyramid scale) are handled by resizing the input tensor only
when the shape changes. Quantised int8/uint8 inputs and outputs are (de)quantised here, so callers
always see float32.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegate.edge.backends.base import TensorInfo
from facegate.edge.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _import_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(
            "running .tflite models needs LiteRT: pip install 'facegate[edge]' (ai-edge-litert)"
        ) from exc
    return Interpreter


class LiteRTBackend:
    """A .tflite model run by the LiteRT interpreter (XNNPACK on CPU)."""

    name = "litert"
    #: returns the Interpreter class; the tflite-runtime backend swaps in its own package
    interpreter_factory = staticmethod(_import_interpreter)

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        interpreter_cls = self.interpreter_factory()
        self.path = Path(path)
        self._threads = threads
        try:
            self._interp = interpreter_cls(model_path=str(self.path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.name} cannot load {self.path}: {exc}") from exc
        # One interpreter per input shape for fully convolutional nets (P-Net sees one shape per
        # pyramid level): resizing an interpreter re-plans its memory and re-prepares XNNPACK on
        # every call, which cost more than P-Net's own arithmetic. Bounded, least recently used out.
        self._by_shape: dict[tuple, object] = {}
        self._in = self._interp.get_input_details()
        self._out = self._ordered_outputs()
        # Fully convolutional nets (P-Net) declare placeholder 1x1 inputs that cannot be allocated:
        # allocation waits for the first real input shape in run().
        self._shapes: dict[int, tuple[int, ...] | None] = {d["index"]: None for d in self._in}

    def _ordered_outputs(self) -> list[dict]:
        details = self._interp.get_output_details()
        signatures = self._interp._get_full_signature_list()  # noqa: SLF001 - no public mapping exists
        if signatures:
            sig = signatures.get("serving_default") or next(iter(signatures.values()))
            by_index = {d["index"]: d for d in details}
            ordered = [by_index[sig["outputs"][n]] for n in sorted(sig["outputs"], key=_natural_key)]
            if len(ordered) == len(details):
                return ordered
        return details

    @staticmethod
    def _info(d: dict) -> TensorInfo:
        sig = d.get("shape_signature", d["shape"])
        shape = tuple(None if s < 0 else int(s) for s in sig)
        return TensorInfo(d["name"], shape, np.dtype(d["dtype"]).name)

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self._info(d) for d in self._in]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self._info(d) for d in self._out]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._in):
            raise ModelError(f"{self.path.name} takes {len(self._in)} inputs, got {len(inputs)}")
        wanted = tuple(tuple(x.shape) for x in inputs)
        if wanted != tuple(self._shapes[d["index"]] for d in self._in):
            self._switch_shape(wanted)
        for d, x in zip(self._in, inputs):
            self._interp.set_tensor(d["index"], _quantize(np.asarray(x, np.float32), d))
        self._interp.invoke()
        return [_dequantize(self._interp.get_tensor(d["index"]), d) for d in self._out]

    MAX_SHAPES = 24

    def _spatially_dynamic(self) -> bool:
        return any(any(s < 0 for s in list(d.get("shape_signature", d["shape"]))[1:3]) for d in self._in)

    def _switch_shape(self, wanted: tuple) -> None:
        current = tuple(self._shapes[d["index"]] for d in self._in)
        if not self._spatially_dynamic():   # fixed-size nets: only the batch changes; resize in place
            for d, shape in zip(self._in, wanted):
                self._interp.resize_tensor_input(d["index"], list(shape))
                self._shapes[d["index"]] = shape
            self._interp.allocate_tensors()
            return
        if None not in current:
            self._by_shape[current] = self._interp
        interp = self._by_shape.pop(wanted, None)
        if interp is None:
            if None in current:          # the first shape: the constructor's interpreter is free
                interp = self._interp
            else:
                interp = self.interpreter_factory()(model_path=str(self.path), num_threads=self._threads)
            for d, shape in zip(self._in, wanted):
                interp.resize_tensor_input(d["index"], list(shape))
            interp.allocate_tensors()
        self._by_shape.pop(wanted, None)
        while len(self._by_shape) >= self.MAX_SHAPES:
            self._by_shape.pop(next(iter(self._by_shape)))
        self._interp = interp
        for d, shape in zip(self._in, wanted):
            self._shapes[d["index"]] = shape


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero = detail["quantization"]
    if dtype == np.float16:
        return x.astype(np.float16)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return y.copy()
    scale, zero = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)
