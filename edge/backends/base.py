"""The one small interface every inference runtime implements.

A backend wraps one model file. It knows its input and output tensors and runs a batch of float32
inputs. Nothing else: preprocessing and post-processing live in the pipeline, so the same cascade
or embedder runs unchanged on LiteRT, ONNX Runtime or (in facegate.convert) Keras.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic axis) and dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@runtime_checkable
class Backend(Protocol):
    """A loaded model that maps a list of input arrays to a list of output arrays."""

    name: str

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def outputs(self) -> Sequence[TensorInfo]: ...

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run one batch; outputs come back in the order of :attr:`outputs`."""
        ...
