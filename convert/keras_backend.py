"""A Keras model behind the edge Backend interface, so the edge cascade and embedders can run the
source models directly (parity checks, evaluation before export)."""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from facegate.edge.backends.base import TensorInfo


class KerasBackend:
    """Runs a Keras model in inference mode (no dropout, frozen batch norm)."""

    name = "keras"

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    @property
    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(t.name, tuple(t.shape), str(t.dtype)) for t in self.model.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(t.name, tuple(t.shape), str(t.dtype)) for t in self.model.outputs]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        x = [np.asarray(a, np.float32) for a in inputs]
        out = self.model(x[0] if len(x) == 1 else x, training=False)
        if not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(o) for o in out]
