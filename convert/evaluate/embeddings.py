"""Embedding a list of image files (detect -> align -> embed) with an on-disk cache per model.

The cache key combines the embedder's identity (name + weights checksum), the alignment and the
detector, so changing any of them recomputes; repeated evaluations of the same model are instant.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.convert.evaluate.faces import FaceFinder, file_key
from facegate.edge.downloads import cache_dir
from facegate.edge.face.align import align_face
from facegate.edge.face.embed import Embedder
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)


@dataclass
class EmbeddingRun:
    """Embeddings of a set of images and what happened on the way."""

    vectors: dict[Path, np.ndarray]
    no_face: list[Path] = field(default_factory=list)
    seconds_detect: float = 0.0
    seconds_embed: float = 0.0


class EmbeddingCache:
    """Image-key -> embedding, plus the keys where no face was found (the centred fallback was
    embedded), persisted as one .npz per (model, alignment, detector)."""

    def __init__(self, tag: str, enabled: bool = True) -> None:
        digest = hashlib.sha1(tag.encode()).hexdigest()[:16]
        self.path = cache_dir() / "embeddings" / f"{digest}.npz" if enabled else None
        self.vectors: dict[str, np.ndarray] = {}
        self.no_face: set[str] = set()
        if self.path and self.path.exists():
            with np.load(self.path) as z:
                self.vectors = {str(k): v for k, v in zip(z["keys"], z["vectors"])}
                self.no_face = {str(k) for k in z["no_face"]}

    def save(self) -> None:
        if not self.path or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".part.npz")
        np.savez(tmp, keys=np.array(list(self.vectors)), vectors=np.stack(list(self.vectors.values())),
                 no_face=np.array(sorted(self.no_face), dtype=str))
        os.replace(tmp, self.path)


def embed_files(paths: list[Path], embedder: Embedder, finder: FaceFinder, alignment: str | None = None,
                use_cache: bool = True, progress: bool = True, batch: int = 32) -> EmbeddingRun:
    """Embed the subject face of every image (each image once, however many pairs use it)."""
    alignment = alignment or embedder.spec.alignment
    cache = EmbeddingCache(f"{embedder.identity}|{alignment}|{embedder.input_size}|{finder.detector.name}|"
                           f"{finder.policy}", enabled=use_cache)
    unique = list(dict.fromkeys(Path(p) for p in paths))
    run = EmbeddingRun(vectors={})
    pending: list[tuple[Path, str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        t0 = time.perf_counter()
        vecs = embedder.embed(np.stack([crop for _, _, crop in pending]))
        run.seconds_embed += time.perf_counter() - t0
        for (path, key, _), vec in zip(pending, vecs):
            cache.vectors[key] = vec
            run.vectors[path] = vec
        pending.clear()

    for path in tqdm(unique, desc=f"embed {embedder.name}", unit="img", disable=not progress):
        key = file_key(path)
        if key in cache.vectors:
            run.vectors[path] = cache.vectors[key]
            if key in cache.no_face:
                run.no_face.append(path)
            continue
        image = load_rgb(path)
        t0 = time.perf_counter()
        face, found = finder.subject(path, image)
        run.seconds_detect += time.perf_counter() - t0
        if not found:
            run.no_face.append(path)
            cache.no_face.add(key)
        pending.append((path, key, align_face(image, face, embedder.input_size, alignment)))
        if len(pending) >= batch:
            flush()
    flush()
    finder.save()
    cache.save()
    return run
