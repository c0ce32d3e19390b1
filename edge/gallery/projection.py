"""PCA-reduced templates: a projection fitted beside an embedder, carried inside the galleries that use it.

A projection keeps the `dims` principal directions of an embedder's outputs on faces that are not LFW pair
people (`facegate calibrate pca`); a gallery stored with it holds `dims`-number templates and projects
every probe the same way. Cosines of projected vectors are not the embedder's cosines, so the projection
carries its own FAR-keyed thresholds, calibrated in the projected space on identity-labelled faces, and a
projected gallery is matched with those instead of the card's. The file sits beside the model and its
card (`<model>.pca<dims>.npz`); a gallery copies the whole projection into its encrypted body (a few
kilobytes), so a door needs nothing else to match against it, and its header records the digest.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.edge.errors import GalleryError


@dataclass(frozen=True, eq=False)
class Projection:
    """x -> unit((x - mean) @ components.T): `components` (dims, dim) has orthonormal rows."""

    mean: np.ndarray
    components: np.ndarray
    model_sha256: str                      # the embedder whose outputs it was fitted on
    thresholds: dict[str, float] = field(default_factory=dict)   # FAR -> cosine in the projected space
    info: dict = field(default_factory=dict)                      # what it was fitted and calibrated on

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float32).reshape(-1)
        comps = np.asarray(self.components, np.float32)
        if comps.ndim != 2 or comps.shape[1] != mean.shape[0] or not 0 < comps.shape[0] <= comps.shape[1]:
            raise GalleryError(f"a PCA projection needs (dims, {mean.shape[0]}) components with dims <= "
                               f"{mean.shape[0]}, not {comps.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(comps))):
            raise GalleryError("a PCA projection holds non-finite numbers")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", comps)

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.components.shape[1])

    @property
    def sha256(self) -> str:
        """Digest of the numbers that define it (mean, components, model, thresholds)."""
        h = hashlib.sha256()
        h.update(self.mean.astype("<f4").tobytes())
        h.update(self.components.astype("<f4").tobytes())
        h.update(json.dumps({"model": self.model_sha256, "thresholds": self.thresholds}, sort_keys=True).encode())
        return h.hexdigest()

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Unit-length projected vectors of (n, input_dim) embeddings."""
        v = np.asarray(vectors, np.float32)
        if v.shape[-1] != self.input_dim:
            raise GalleryError(f"the PCA projection takes {self.input_dim}-number embeddings, not {v.shape[-1]}")
        p = (v.reshape(-1, self.input_dim) - self.mean) @ self.components.T
        return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)

    # -- inside a gallery body -----------------------------------------------------------------
    def to_record(self) -> dict:
        """JSON-ready: the numbers as base64 little-endian float32 (a third of the text of decimal lists)."""
        return {"dims": self.dims, "input_dim": self.input_dim,
                "mean": base64.b64encode(self.mean.astype("<f4").tobytes()).decode(),
                "components": base64.b64encode(self.components.astype("<f4").tobytes()).decode(),
                "model_sha256": self.model_sha256, "thresholds": self.thresholds, "info": self.info}

    @classmethod
    def from_record(cls, record: dict) -> "Projection":
        if not isinstance(record, dict) or \
                not {"dims", "input_dim", "mean", "components", "model_sha256", "thresholds"} <= set(record):
            raise ValueError("the gallery's PCA projection record is malformed")
        thresholds = record["thresholds"]
        if not isinstance(thresholds, dict) or not all(isinstance(v, (int, float)) for v in thresholds.values()):
            raise ValueError("the gallery's PCA thresholds are malformed")
        dims, dim = record["dims"], record["input_dim"]
        if not all(isinstance(v, int) and 0 < v <= 4096 for v in (dims, dim)):
            raise ValueError("the gallery's PCA projection has no sensible size")
        mean = np.frombuffer(base64.b64decode(record["mean"], validate=True), "<f4")
        comps = np.frombuffer(base64.b64decode(record["components"], validate=True), "<f4")
        if mean.size != dim or comps.size != dims * dim:
            raise ValueError("the gallery's PCA projection numbers do not fit its size")
        return cls(mean.astype(np.float32), comps.reshape(dims, dim).astype(np.float32), str(record["model_sha256"]),
                   {str(k): float(v) for k, v in thresholds.items()}, dict(record.get("info") or {}))

    # -- beside the model ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".part.npz")
        meta = json.dumps({"model_sha256": self.model_sha256, "thresholds": self.thresholds, "info": self.info})
        np.savez(tmp, mean=self.mean, components=self.components, meta=np.array(meta))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Projection":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return cls(z["mean"], z["components"], meta["model_sha256"], meta["thresholds"], meta.get("info", {}))
        except FileNotFoundError as exc:
            raise GalleryError(f"PCA projection not found: {path} (make one with `facegate calibrate pca`)") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise GalleryError(f"{path} is not a facegate PCA projection ({exc})") from exc


def projection_path(model_path: str | Path, dims: int) -> Path:
    """Where the projection of `dims` dimensions of a model lives: beside the model and its card."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.name}.pca{dims}.npz")


def fit_projection(vectors: np.ndarray, dims: int, model_sha256: str, info: dict | None = None) -> Projection:
    """The `dims` principal directions of `vectors` (thresholds are added by calibration)."""
    v = np.asarray(vectors, np.float64)
    if len(v) <= dims:
        raise GalleryError(f"fitting {dims} PCA dimensions needs more than {dims} faces, got {len(v)}")
    mean = v.mean(axis=0)
    _, s, vt = np.linalg.svd(v - mean, full_matrices=False)
    kept = float((s[:dims] ** 2).sum() / (s ** 2).sum())
    return Projection(mean.astype(np.float32), vt[:dims].astype(np.float32), model_sha256, {},
                      {**(info or {}), "faces": int(len(v)), "variance_kept": round(kept, 4)})
