"""Finding the subject face of each evaluation image, with detections cached on disk.

Detection is shared by every embedder evaluated on the same images, so it is cached per detector
(name + cascade settings) and image (path, size, mtime). Images where the detector finds nothing
fall back to a centred face box (the evaluation images are face-centred crops) and are counted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facegate.edge.detect import MTCNN, Face
from facegate.edge.detect.face import pick_face
from facegate.edge.downloads import cache_dir
from facegate.edge.face.align import fallback_face
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)


def file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}"


def _face_from_dict(d: dict) -> Face:
    return Face(box=np.array(d["box"], np.float32), score=float(d["score"]),
                landmarks=np.array(d["landmarks"], np.float32))


class FaceFinder:
    """Detects faces in image files (cached) and picks the subject face of each."""

    def __init__(self, detector: MTCNN, policy: str = "central", use_cache: bool = True) -> None:
        self.detector = detector
        self.policy = policy
        self.path = None
        self._entries: dict[str, list[dict]] = {}
        self._dirty = 0
        if use_cache:
            tag = hashlib.sha1(json.dumps(asdict(detector.config), sort_keys=True).encode()).hexdigest()[:10]
            self.path = cache_dir() / "detections" / f"{detector.name}-{tag}.json"
            if self.path.exists():
                try:
                    self._entries = json.loads(self.path.read_text())
                except json.JSONDecodeError:
                    log.warning("detection cache %s is corrupt; starting afresh", self.path)

    def faces(self, path: Path, image: np.ndarray | None = None) -> list[Face]:
        key = file_key(path)
        if key not in self._entries:
            image = load_rgb(path) if image is None else image
            self._entries[key] = [f.to_dict() for f in self.detector.detect(image)]
            self._dirty += 1
            if self._dirty >= 500:
                self.save()
        return [_face_from_dict(d) for d in self._entries[key]]

    def subject(self, path: Path, image: np.ndarray) -> tuple[Face, bool]:
        """The face to embed and whether the detector found it (False: centred fallback)."""
        face = pick_face(self.faces(path, image), image.shape, self.policy)
        if face is None:
            return fallback_face(image.shape), False
        return face, True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)
        self._dirty = 0
