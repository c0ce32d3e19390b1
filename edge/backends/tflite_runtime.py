"""tflite-runtime backend, for legacy boards whose OS image only has it.

tflite-runtime 2.14 (its last release) needs numpy < 2, so it lives in its own environment
(`pip install 'facegate[legacy]'`), never beside ai-edge-litert. It runs int8 models without
XNNPACK (20-80x slower than LiteRT here) and cannot load TF 2.21 dynamic-range models; both are
warned about rather than discovered on the door.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from facegate.edge.backends.litert import LiteRTBackend
from facegate.edge.errors import BackendUnavailableError

log = logging.getLogger(__name__)


def _import_interpreter():
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError as exc:
        raise BackendUnavailableError(
            "the tflite-runtime backend needs: pip install 'facegate[legacy]' (tflite-runtime 2.14, numpy < 2) "
            "in its own environment; prefer ai-edge-litert (facegate[edge]) where the board allows it"
        ) from exc
    if int(np.__version__.split(".")[0]) >= 2:
        raise BackendUnavailableError(
            f"tflite-runtime 2.14 fails with numpy {np.__version__} (it needs numpy < 2): "
            "use ai-edge-litert instead, or a separate environment with numpy 1.26")
    return Interpreter


class TFLiteRuntimeBackend(LiteRTBackend):
    """Same interpreter API as LiteRT, different package and caveats."""

    name = "tflite-runtime"
    interpreter_factory = staticmethod(_import_interpreter)

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(path, threads=threads)
        if any(np.dtype(d["dtype"]) in (np.int8, np.uint8) for d in self._in):
            warnings.warn(f"{Path(path).name} is an int8 model: tflite-runtime runs it without XNNPACK, "
                          "20-80x slower than ai-edge-litert", RuntimeWarning, stacklevel=2)
