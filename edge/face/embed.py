"""Embedders: a backend plus the input recipe from its card, producing L2-normalised vectors."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegate.edge.backends import Backend, load_backend
from facegate.edge.cards import InputSpec, ModelCard, load_card
from facegate.edge.errors import ModelError


def normalise(crops: np.ndarray, method: str) -> np.ndarray:
    """uint8 images (NHWC crops or one HxWxC frame) -> float32 model input, per the card's
    normalisation name (the MTCNN cascade normalises its frames here too)."""
    x = crops.astype(np.float32)
    if method == "prewhiten":
        # FaceNet's per-image standardisation: (x - mean) / max(std, 1/sqrt(N))
        axes = (1, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True)
        n = float(np.prod(x.shape[1:]))
        return (x - mean) / np.maximum(std, 1.0 / np.sqrt(n))
    if method == "mean127.5_div128":
        # in place on the one float copy: (x - 127.5) / 128 bit for bit (dividing by 2**7 is exact)
        # without two more full-size temporaries, which on a 640x480 frame cost more than P-Net's
        # last five pyramid levels together
        x -= 127.5
        x *= 1.0 / 128.0
        return x
    if method == "div255":
        return x / 255.0
    if method == "none":
        return x
    raise ModelError(f"unknown input normalisation {method!r}")


def l2_normalise(v: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


class Embedder:
    """Turns aligned face crops into unit-length embeddings."""

    def __init__(self, backend: Backend, spec: InputSpec, name: str, identity: str,
                 card: ModelCard | None = None, batch_size: int = 32) -> None:
        self.backend = backend
        self.spec = spec
        self.name = name
        #: stable string that changes whenever the model's outputs could change (cache key)
        self.identity = identity
        self.card = card
        self.batch_size = batch_size

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None, backend: str | None = None) -> "Embedder":
        """An embedder from a model file and its card (sha256 verified)."""
        card = load_card(path)
        if card.task != "embedding":
            raise ModelError(f"{path} is a {card.task!r} model, not an embedding model")
        return cls(load_backend(path, backend=backend, threads=threads), card.input, card.name,
                   identity=f"{card.name}:{card.sha256}", card=card)

    @property
    def input_size(self) -> int:
        return self.spec.size

    def embed(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, size, size, 3) uint8 RGB crops -> (N, D) float32 unit vectors."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.spec.size, self.spec.size, 3):
            raise ModelError(f"{self.name} expects crops of shape (N, {self.spec.size}, {self.spec.size}, 3), "
                             f"got {crops.shape}")
        outs = []
        for start in range(0, len(crops), self.batch_size):
            x = normalise(crops[start:start + self.batch_size], self.spec.normalisation)
            outs.append(self.backend.run([x])[0].reshape(len(x), -1))
        if not outs:
            return np.zeros((0, 0), np.float32)
        return l2_normalise(np.concatenate(outs).astype(np.float32))
