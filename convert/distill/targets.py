"""Teacher targets for embedder distillation, computed once and cached on disk.

For every training photo the subject face is detected once; from the same five landmarks we cut
* the teacher's input, exactly as the teacher's card prescribes (FaceNet: 160x160 margin crop), and
  embed it together with its mirror image: the target is the normalised mean of the two, which
  removes the teacher's small left/right jitter the student could never learn;
* the student's input, aligned to the 112x112 ArcFace template but stored on a 144x144 canvas
  (template shifted by 16 px) so augmentation can rotate/scale/shift without black borders. The
  centre 112x112 of the canvas is exactly the `similarity112` crop the runtime produces.

The cache is one .npz per (teacher, detector, photo list) and is saved every few hundred photos,
so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facegate.convert.distill.sources import Photo
from facegate.edge.detect import MTCNN, Face
from facegate.edge.detect.boxes import pairwise_overlap
from facegate.edge.detect.face import pick_face
from facegate.edge.errors import DatasetError
from facegate.edge.face.align import align_face, template, umeyama
from facegate.edge.face.embed import Embedder, l2_normalise
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)

STUDENT_SIZE = 112
CANVAS = 144
PAD = (CANVAS - STUDENT_SIZE) // 2


@dataclass
class TargetSet:
    """Cached distillation data: student canvases, teacher targets, labels, photo keys."""

    keys: np.ndarray        # (N,) str
    labels: np.ndarray      # (N,) str ("" = unlabelled)
    canvases: np.ndarray    # (N, 144, 144, 3) uint8
    targets: np.ndarray     # (N, D) float32, unit length
    teacher: str

    def __len__(self) -> int:
        return len(self.keys)

    def centre_crops(self) -> np.ndarray:
        """The un-augmented 112x112 student inputs (what the runtime's similarity112 gives)."""
        return self.canvases[:, PAD:PAD + STUDENT_SIZE, PAD:PAD + STUDENT_SIZE]

    def subset(self, index: np.ndarray) -> "TargetSet":
        return TargetSet(self.keys[index], self.labels[index], self.canvases[index], self.targets[index], self.teacher)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".part.npz")
        np.savez(tmp, keys=self.keys, labels=self.labels, canvases=self.canvases, targets=self.targets,
                 teacher=np.array(self.teacher))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "TargetSet":
        with np.load(path) as z:
            return cls(z["keys"].astype(str), z["labels"].astype(str), z["canvases"], z["targets"].astype(np.float32),
                       str(z["teacher"]))

    @classmethod
    def empty(cls, dim: int, teacher: str) -> "TargetSet":
        return cls(np.zeros(0, str), np.zeros(0, str), np.zeros((0, CANVAS, CANVAS, 3), np.uint8),
                   np.zeros((0, dim), np.float32), teacher)


def student_canvas(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 144x144 canvas whose centre 112x112 is the similarity112 crop."""
    matrix = umeyama(landmarks, template(STUDENT_SIZE) + PAD)
    return cv2.warpAffine(image, matrix, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def find_face(detector: MTCNN, image: np.ndarray, photo: Photo) -> Face | None:
    """The photo's subject: for a mined WIDER face the detection that overlaps its ground-truth box
    (searched in a window around it, so crowded photos stay cheap), else the central face."""
    if photo.box is None:
        return pick_face(detector.detect(image), image.shape, "central")
    x1, y1, x2, y2 = photo.box
    w, h = x2 - x1, y2 - y1
    ox, oy = int(max(0, x1 - w)), int(max(0, y1 - h))
    window = image[oy:int(min(image.shape[0], y2 + h)), ox:int(min(image.shape[1], x2 + w))]
    faces = detector.detect(window)
    if not faces:
        return None
    boxes = np.array([f.box for f in faces]) + [ox, oy, ox, oy]
    iou = pairwise_overlap(np.array([photo.box]), boxes)[0]
    best = int(np.argmax(iou))
    if iou[best] < 0.4:
        return None
    f = faces[best]
    return Face(box=boxes[best].astype(np.float32), score=f.score, landmarks=f.landmarks + np.array([ox, oy], np.float32))


def teacher_targets(teacher: Embedder, crops: np.ndarray) -> np.ndarray:
    """Flip-averaged teacher embeddings, unit length."""
    return l2_normalise(teacher.embed(crops) + teacher.embed(crops[:, :, ::-1]))


def producer(teacher: Embedder, detector: MTCNN) -> str:
    """What makes a face's canvas and target: the teacher and the detector (with its settings)."""
    return f"{teacher.identity}|{teacher.spec}|{detector.name}|{detector.config}"


def cache_path(cache_root: Path, teacher: Embedder, detector: MTCNN, photos: list[Photo]) -> Path:
    digest = hashlib.sha1()
    digest.update(producer(teacher, detector).encode())
    for p in photos:
        digest.update(p.key.encode())
    return cache_root / f"targets-{digest.hexdigest()[:16]}.npz"


def _producer_file(path: Path) -> Path:
    return path.with_name(path.stem + ".producer.txt")


def reuse_other_caches(path: Path, photos: list[Photo], made_by: str) -> tuple[TargetSet | None, set[str]]:
    """Faces (and photos without a face) of these photos already in another cache of the same teacher
    and detector: a training set that grows by a few folders embeds only the new photos."""
    wanted = {p.key for p in photos}
    found: list[TargetSet] = []
    skipped: set[str] = set()
    have: set[str] = set()
    for other in sorted(path.parent.glob("targets-*.npz")):
        marker = _producer_file(other)
        if other == path or other.name.endswith(".part.npz") or not marker.exists():
            continue
        if marker.read_text().strip() != made_by:
            continue
        with np.load(other) as z:                      # keys first: most caches share nothing
            keys = z["keys"].astype(str)
        take = np.array([k in wanted and k not in have for k in keys], bool)
        if take.any():
            found.append(TargetSet.load(other).subset(np.flatnonzero(take)))
            have.update(keys[take].tolist())
        done = other.with_name(other.stem + ".skipped.txt")
        if done.exists():
            skipped |= set(done.read_text().splitlines()) & wanted
    if found:
        log.info("teacher targets: %d of %d photos' faces reused from other caches", len(have), len(wanted))
    return (concat(found) if found else None), skipped - have


def build_targets(photos: list[Photo], teacher: Embedder, detector: MTCNN, cache_root: Path,
                  save_every: int = 500, progress: bool = True) -> TargetSet:
    """Targets for every photo with a detectable face (cached; resumes an interrupted build)."""
    if not photos:
        raise DatasetError("no training photos")
    path = cache_path(cache_root, teacher, detector, photos)
    done_path = path.with_name(path.stem + ".skipped.txt")
    made_by = producer(teacher, detector)
    if path.exists():
        data = TargetSet.load(path)
        skipped = set(done_path.read_text().splitlines()) if done_path.exists() else set()
    else:
        data, skipped = reuse_other_caches(path, photos, made_by) if path.parent.is_dir() else (None, set())
    path.parent.mkdir(parents=True, exist_ok=True)
    _producer_file(path).write_text(made_by + "\n")
    have = set(data.keys) if data is not None else set()
    todo = [p for p in photos if p.key not in have and p.key not in skipped]
    if not todo and data is not None:
        if not path.exists():                                  # everything came from other caches
            data = in_photo_order(data, photos)
            data.save(path)
            done_path.write_text("\n".join(sorted(skipped)))
        log.info("teacher targets: %d faces from cache %s", len(data), path)
        return data
    parts: dict[str, list] = {"keys": [], "labels": [], "canvases": [], "teacher_crops": []}
    chunks = [data] if data is not None else []

    def flush() -> None:
        if not parts["keys"]:
            return
        targets = teacher_targets(teacher, np.stack(parts["teacher_crops"]))
        chunks.append(TargetSet(np.array(parts["keys"]), np.array(parts["labels"]), np.stack(parts["canvases"]),
                                targets.astype(np.float32), teacher.identity))
        merged = concat(chunks)
        chunks[:] = [merged]
        merged.save(path)
        done_path.write_text("\n".join(sorted(skipped)))
        for v in parts.values():
            v.clear()

    for photo in tqdm(todo, desc="teacher targets", unit="face", disable=not progress):
        try:
            image = load_rgb(photo.path)
        except Exception as exc:  # a broken photo in a user's folder must not stop a long build
            log.warning("skipping %s: %s", photo.path, exc)
            skipped.add(photo.key)
            continue
        face = find_face(detector, image, photo)
        if face is None:
            skipped.add(photo.key)
            continue
        parts["keys"].append(photo.key)
        parts["labels"].append(photo.label)
        parts["canvases"].append(student_canvas(image, face.landmarks))
        parts["teacher_crops"].append(align_face(image, face, teacher.input_size, teacher.spec.alignment))
        if len(parts["keys"]) >= save_every:
            flush()
    flush()
    done_path.parent.mkdir(parents=True, exist_ok=True)
    done_path.write_text("\n".join(sorted(skipped)))
    if not chunks:
        raise DatasetError(f"no faces found in any of the {len(photos)} training photos")
    data = in_photo_order(chunks[0], photos)
    if data is not chunks[0]:
        data.save(path)
    log.info("teacher targets: %d faces, %d photos without a usable face", len(data), len(skipped))
    return data


def in_photo_order(data: TargetSet, photos: list[Photo]) -> TargetSet:
    """The faces in the order of their photos (what a build from nothing gives), whatever cache they
    came from; `data` itself when it is already in that order."""
    rank = {p.key: i for i, p in enumerate(photos)}
    order = np.argsort([rank.get(k, len(rank)) for k in data.keys], kind="stable")
    return data if np.array_equal(order, np.arange(len(order))) else data.subset(order)


def concat(sets: list[TargetSet]) -> TargetSet:
    return TargetSet(np.concatenate([s.keys for s in sets]), np.concatenate([s.labels for s in sets]),
                     np.concatenate([s.canvases for s in sets]), np.concatenate([s.targets for s in sets]),
                     sets[0].teacher)
