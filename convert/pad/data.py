"""pad_dev (../shared/datasets/pad_dev): labelled live and attack images, a subject-disjoint split, and
the face box of each image from facegate's own detector (as on a door: faces are not pre-cropped)."""
from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.edge.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PadSample:
    path: Path
    live: bool
    attack: str        # none, print, replay-tablet, replay-phone, unspecified
    source: str        # nuaa, msu, celebaspoof
    subject: str

    @property
    def key(self) -> str:
        """'live/x.jpg': unique (the same file name can be live in one folder and an attack in the other)."""
        return f"{self.path.parent.name}/{self.path.name}"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def load_pad_dev(root: str | Path) -> list[PadSample]:
    root = Path(root)
    labels = root / "labels.tsv"
    if not labels.is_file():
        raise DatasetError(f"{labels} not found: pad_dev lives in ../shared/datasets/pad_dev")
    return _from_labels(root, labels)


def _from_labels(root: Path, labels: Path) -> list[PadSample]:
    """labels.tsv: path and label (live / spoof) required; attack, source, subject optional."""
    with labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    samples = []
    for line, r in enumerate(rows, start=2):
        if not r.get("path") or r.get("label") not in ("live", "spoof"):
            raise DatasetError(f"{labels}:{line}: expected a path and a label 'live' or 'spoof' "
                               "(columns path, label[, attack, source, subject])")
        live = r["label"] == "live"
        attack = "none" if live else (r.get("attack") or "unspecified")
        path = root / r["path"]
        samples.append(PadSample(path, live, attack, r.get("source") or root.name,
                                 r.get("subject") or f"{root.name}-unknown"))
    return samples


def load_pad_folder(root: str | Path) -> list[PadSample]:
    """Any labelled presentation-attack folder: `labels.tsv` (pad_dev's columns), or `live/` and `spoof/`
    subfolders (images in `spoof/<attack type>/` get that type, loose ones 'unspecified')."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    if (root / "labels.tsv").is_file():
        samples = _from_labels(root, root / "labels.tsv")
    elif (root / "live").is_dir() and (root / "spoof").is_dir():
        def images(folder: Path) -> list[Path]:
            return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        samples = [PadSample(p, True, "none", root.name, f"{root.name}-unknown") for p in images(root / "live")]
        for p in images(root / "spoof"):
            kind = p.parent.name if p.parent != root / "spoof" else "unspecified"
            samples.append(PadSample(p, False, kind, root.name, f"{root.name}-unknown"))
    else:
        raise DatasetError(f"{root} has neither labels.tsv nor live/ and spoof/ subfolders")
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} labelled images are missing, e.g. {missing[0]}")
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise DatasetError(f"{root}: two images share the folder and file name {twice}: rename one")
    if not any(s.live for s in samples) or all(s.live for s in samples):
        raise DatasetError(f"{root}: an evaluation needs both live and spoof images")
    return samples


def split_group(sample: PadSample) -> str:
    """The unit that never straddles train and validation: the subject; CelebA-Spoof's sample has no
    subject ids, so each of its images is its own group (its people are unknown, disjointness cannot be
    promised for them; the NUAA and MSU subjects are disjoint)."""
    return sample.key if sample.subject.endswith("-unknown") else sample.subject


def subject_split(samples: list[PadSample], val_fraction: float = 0.25, seed: int = 0
                  ) -> tuple[list[PadSample], list[PadSample]]:
    """(train, validation) by a stable hash of each split group."""
    def bucket(group: str) -> float:
        return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    train = [s for s in samples if bucket(split_group(s)) >= val_fraction]
    val = [s for s in samples if bucket(split_group(s)) < val_fraction]
    return train, val


def boxes_cache(out: Path, detector) -> Path:
    """Where an evaluation run under `out` keeps its face boxes: one file per detector, so a follow-up
    on the same run (benchmarks/reproduce/pad_*.py) reads them instead of detecting every face again."""
    return out / f"face_boxes_{getattr(detector, 'name', 'detector')}.npz"


def face_boxes(samples: list[PadSample], detector, cache: Path | None = None,
               progress: bool = False) -> dict[str, np.ndarray | None]:
    """sample key -> the subject's face box (x1, y1, x2, y2) or None where no face is found; cached."""
    from facegate.edge.detect.face import pick_face
    from facegate.edge.images import load_rgb
    if cache and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        boxes = {str(k): (v if np.isfinite(v).all() else None) for k, v in zip(data["names"], data["boxes"])}
        if all(s.key in boxes for s in samples):
            return boxes
    boxes: dict[str, np.ndarray | None] = {}
    for s in tqdm(samples, desc="find faces", unit="img", disable=not progress):
        rgb = load_rgb(s.path)
        face = pick_face(detector.detect(rgb), rgb.shape)
        boxes[s.key] = None if face is None else np.asarray(face.box[:4], np.float32)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        names = np.array(list(boxes))
        arr = np.array([b if b is not None else np.full(4, np.nan, np.float32) for b in boxes.values()], np.float32)
        np.savez(cache, names=names, boxes=arr)
    missing = sum(b is None for b in boxes.values())
    log.info("pad_dev: faces found in %d of %d images", len(boxes) - missing, len(boxes))
    return boxes
