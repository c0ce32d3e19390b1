"""LiteRT (ai-edge-litert) backend for .tflite files: the default on boards.

Outputs are returned in the order of the model's serving signature (output_0, output_1, ...), which
is the Keras output order; raw interpreter output order is not guaranteed to match it. Each input
shape (P-Net's pyramid levels, R/O-Net's candidate counts) gets its own prepared interpreter, kept
for the next frame. Quantised int8/uint8 inputs and outputs are (de)quantised here, so callers
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
from facegate.edge.quiet import native_stderr_silenced

log = logging.getLogger(__name__)
#: whether this process has already created an XNNPACK delegate (LiteRT announces only the first)
_DELEGATE_ANNOUNCED = False


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
        # One prepared interpreter per input shape: resizing an interpreter re-plans its memory and
        # re-prepares XNNPACK, which cost more than P-Net's own arithmetic on each pyramid level and
        # (for R/O-Net, whose batch is the candidate count) up to a crop's worth of O-Net time
        # whenever the count changed between frames. Least recently used out; batches above
        # MAX_CACHED_BATCH share one interpreter resized in place, so memory stays bounded on boards.
        self._parked: dict[object, tuple[object, tuple]] = {}
        self._in = self._interp.get_input_details()
        self._out = self._ordered_outputs()
        self._dynamic = any(any(s < 0 for s in list(d.get("shape_signature", d["shape"]))[1:3]) for d in self._in)
        # Fully convolutional nets (P-Net) declare placeholder 1x1 inputs that cannot be allocated:
        # allocation waits for the first real input shape in run().
        self._current: tuple = tuple(None for _ in self._in)

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
        if wanted != self._current:
            self._switch_shape(wanted)
        for d, x in zip(self._in, inputs):
            self._interp.set_tensor(d["index"], _quantize(np.asarray(x, np.float32), d))
        self._interp.invoke()
        return [_dequantize(self._interp.get_tensor(d["index"]), d) for d in self._out]

    MAX_SHAPES = 24
    MAX_CACHED_BATCH = 32

    def _slot(self, shapes: tuple) -> object:
        """Which parked interpreter serves these input shapes (large fixed-size batches share one)."""
        if self._dynamic or shapes[0][0] <= self.MAX_CACHED_BATCH:
            return shapes
        return "large-batch"

    def _switch_shape(self, wanted: tuple) -> None:
        if None not in self._current:
            self._parked[self._slot(self._current)] = (self._interp, self._current)
        slot = self._slot(wanted)
        interp, shapes = self._parked.pop(slot, (None, None))
        if interp is None:
            if None in self._current:    # the first shape: the constructor's interpreter is free
                interp = self._interp
            else:
                interp = self.interpreter_factory()(model_path=str(self.path), num_threads=self._threads)
        if shapes != wanted:
            for d, shape in zip(self._in, wanted):
                interp.resize_tensor_input(d["index"], list(shape))
            global _DELEGATE_ANNOUNCED
            # the first allocation in a process creates the XNNPACK delegate, which says so on stderr
            with native_stderr_silenced(not _DELEGATE_ANNOUNCED and not log.isEnabledFor(logging.DEBUG)):
                interp.allocate_tensors()
            _DELEGATE_ANNOUNCED = True
        while len(self._parked) >= self.MAX_SHAPES:
            self._parked.pop(next(iter(self._parked)))
        self._interp, self._current = interp, wanted


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
