"""Relational targets from an ensemble of teachers: FaceNet, the MobileFaceNet peer and dlib's ResNet.

No single network here separates LFW better than 99.25%, but the mean cosine of the teacher and the peer
reaches 99.45% and with dlib's ResNet 99.47% (benchmarks/reproduce/embedder_ceiling.py). The student
keeps FaceNet's coordinates (its cosine term reads the teacher's targets, so teacher-enrolled galleries
keep working); what the ensemble gives is the *geometry between faces*: the relational term makes the
student's in-batch similarities match the members' mean cosine.

Each member embeds every training face once, flip-averaged like the teacher's targets (clean view and
mirror image, normalised mean), cached beside the targets. The members' unit vectors, each scaled by
1/sqrt(k) and concatenated, form one vector per face whose dot products *are* the mean cosine of the k
members, so the trainers need nothing but one more array.

dlib runs at conversion time only (the `peers` extra: `dlib-bin`, `face_recognition_models`); the edge
runtime never imports it.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.convert.distill.targets import CANVAS, PAD, TargetSet
from facegate.edge.errors import ModelError
from facegate.edge.face.embed import l2_normalise

log = logging.getLogger(__name__)

MEMBERS = ("teacher", "peer", "dlib")

#: the face box dlib's 5-point predictor is given on a student canvas: the ArcFace template's face
#: (eyes at y 51.6, mouth at 92.3 of 112) inside an 80 px square, shifted onto the 144 px canvas
DLIB_BOX = (PAD + 16, PAD + 32, PAD + 96, PAD + 112)
#: canvases are enlarged this much before dlib reads them (its predictor and chip expect larger faces)
DLIB_UPSCALE = 2


def parse_ensemble(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'teacher,peer,dlib' -> ('teacher', 'peer', 'dlib'); unknown or repeated members are refused."""
    if not text:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in MEMBERS]
    if unknown:
        raise ValueError(f"--ensemble members are {', '.join(MEMBERS)}; not {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--ensemble names a member twice: {','.join(names)}")
    return tuple(names)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Unit rows as float32, normalised in float64 (dlib's descriptors come as float64)."""
    return l2_normalise(np.asarray(x, np.float64)).astype(np.float32)


def ensemble_vectors(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One vector per face whose dot products are the members' mean cosine: the unit vectors of each
    member scaled by 1/sqrt(k), side by side. Unit length itself."""
    if not parts:
        raise ValueError("an ensemble needs at least one member")
    scale = 1.0 / np.sqrt(len(parts))
    return np.concatenate([unit_rows(p) * scale for p in parts], axis=1).astype(np.float32)


def member_embeddings(data: TargetSet, member: str, cache: Path | None = None, progress: bool = True) -> np.ndarray:
    """(N, D) unit, flip-averaged embeddings of every face of `data` by one member. Cached in
    `cache`/ensemble-<member>.npz by the digest of each face's canvas (what the member reads: another
    detector or alignment makes another canvas), so adding photos to a training set embeds only the new
    faces."""
    if member == "teacher":
        return unit_rows(data.targets)
    if member not in MEMBERS:
        raise ValueError(f"unknown ensemble member {member!r} ({', '.join(MEMBERS)})")
    embed = peer_embeddings if member == "peer" else dlib_embeddings
    if cache is None:
        return embed(data.canvases, progress)
    path = Path(cache) / f"ensemble-{member}.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            known = dict(zip(z["keys"].astype(str).tolist(), z["embeddings"]))
    keys = canvas_digests(data.canvases)
    missing = np.array([i for i, k in enumerate(keys) if k not in known], np.int64)
    if len(missing):
        log.info("%s embeddings: %d of %d faces to compute (%s)", member, len(missing), len(data), path)
        for k, v in zip([keys[i] for i in missing], embed(data.canvases[missing], progress)):
            known[k] = v
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".part.npz")
        np.savez(tmp, keys=np.array(list(known)), embeddings=np.stack(list(known.values())))
        os.replace(tmp, path)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def canvas_digests(canvases: np.ndarray) -> list[str]:
    """One sha256 per canvas (its shape and pixels): the member caches' keys."""
    return [hashlib.sha256(f"{c.shape}".encode() + np.ascontiguousarray(c).tobytes()).hexdigest()[:32]
            for c in canvases]


def centred(x: np.ndarray) -> np.ndarray:
    """Unit rows after removing the mean over the faces. dlib's descriptors all lie in one narrow cone
    (impostor pairs at cosine ~0.83, genuine ~0.95): uncentred, they would ask the student for high
    similarity between strangers instead of lending their ranking."""
    return unit_rows(np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0))


def ensemble_for(data: TargetSet, members: Sequence[str], cache: Path | None = None,
                 progress: bool = True) -> dict[str, np.ndarray]:
    """Each member's embeddings of the faces, in the order given: the teacher's targets as they are (the
    student's coordinates), the other members centred on these faces' mean."""
    return {m: member_embeddings(data, m, cache, progress) if m == "teacher" else
            centred(member_embeddings(data, m, cache, progress)) for m in members}


def flip_average(embed, crops: np.ndarray) -> np.ndarray:
    """The normalised mean of a batch's embeddings and its mirror images' (as the teacher's targets are)."""
    return unit_rows(unit_rows(embed(crops)) + unit_rows(embed(np.ascontiguousarray(crops[:, :, ::-1]))))


def peer_embeddings(canvases: np.ndarray, progress: bool = True, batch: int = 128) -> np.ndarray:
    """The pretrained MobileFaceNet's own 192-D embedding of each canvas's centre crop."""
    from facegate.convert.distill.embedder import NORMALISATION
    from facegate.convert.distill.head import peer_crop_reference

    reference = peer_crop_reference(NORMALISATION, batch)
    crops = np.ascontiguousarray(canvases[:, PAD:CANVAS - PAD, PAD:CANVAS - PAD])
    rows = [flip_average(lambda c: reference(c, None), crops[i:i + batch])
            for i in tqdm(range(0, len(crops), batch), desc="peer embeddings", unit="batch", disable=not progress)]
    return np.concatenate(rows) if rows else np.zeros((0, 192), np.float32)


def dlib_models():
    """dlib's 5-point predictor and ResNet from `face_recognition_models` (CC0), or a clear error."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as exc:
        raise ModelError("the dlib ensemble member needs the peers extra (conversion time only): "
                         f"pip install -e '.[peers]' ({exc})") from exc
    return (dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location()), dlib)


def dlib_embeddings(canvases: np.ndarray, progress: bool = True, batch: int = 64) -> np.ndarray:
    """dlib ResNet's 128-D descriptor of each canvas (and its mirror image), dlib's own 5-point alignment."""
    import cv2

    predictor, net, dlib = dlib_models()
    s = DLIB_UPSCALE
    rect = dlib.rectangle(*(v * s for v in DLIB_BOX))

    def describe(image: np.ndarray) -> np.ndarray:
        big = np.ascontiguousarray(cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC))
        return np.asarray(net.compute_face_descriptor(big, predictor(big, rect), 0), np.float32)

    def describe_all(images: np.ndarray) -> np.ndarray:
        return np.stack([describe(image) for image in images])

    rows = [flip_average(describe_all, canvases[i:i + batch])
            for i in tqdm(range(0, len(canvases), batch), desc="dlib embeddings", unit="batch", disable=not progress)]
    return np.concatenate(rows) if rows else np.zeros((0, 128), np.float32)


def relational_reference(members: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """What the head refinement needs: the non-teacher members' ensemble vector and its share of the
    target similarities (the teacher's similarities make up the rest); the teacher alone: its own
    targets with share 0."""
    others = [v for m, v in members.items() if m != "teacher"]
    if not others:
        return unit_rows(members["teacher"]), 0.0
    share = len(others) / len(members)
    return ensemble_vectors(others), share
