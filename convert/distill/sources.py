"""Which face photos a student may learn from, with identity labels where the folders give them.

A source is any folder of photos: `<folder>/<identity>/<image>` gives labels (used by the optional
identity loss and to hold identities out for validation), loose images get none. LFW is special:
people who appear in `pairs.txt` are excluded, because the students are evaluated on those pairs.
WIDER FACE photos hold many faces each; :func:`mine_wider` cuts out the large ones.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.edge.errors import DatasetError
from facegate.edge.images import list_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    """One training photo: where it is, whose face (or "" if unknown), and for WIDER mining the
    ground-truth box (x1, y1, x2, y2) of the face to take from a crowded photo."""

    path: Path
    label: str = ""
    box: tuple[float, float, float, float] | None = None

    @property
    def key(self) -> str:
        box = "" if self.box is None else ",".join(f"{v:.0f}" for v in self.box)
        return f"{self.path.resolve()}|{box}"


def lfw_pair_people(pairs_file: Path) -> set[str]:
    """Everyone named in an LFW pairs file (both same- and different-person lines)."""
    names: set[str] = set()
    for line in pairs_file.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            names.add(parts[0])
        elif len(parts) == 4:
            names.update((parts[0], parts[2]))
    return names


def folder_photos(folder: Path, exclude_people: set[str] | None = None, prefix: str = "") -> list[Photo]:
    """Photos below a folder, labelled by their identity sub-folder; `exclude_people` are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"training folder not found: {folder}")
    exclude = exclude_people or set()
    photos = []
    for path in list_images(folder):
        rel = path.relative_to(folder)
        person = rel.parts[0] if len(rel.parts) > 1 else ""
        if person in exclude:
            continue
        photos.append(Photo(path, f"{prefix}{person}" if person else ""))
    if not photos:
        raise DatasetError(f"no usable face photos under {folder}")
    return photos


def lfw_training_photos(lfw_root: Path) -> list[Photo]:
    """LFW images of people who are not in pairs.txt (the only LFW images a student may see)."""
    pairs = lfw_root / "pairs.txt"
    if not pairs.exists():
        raise DatasetError(f"LFW pairs.txt not found under {lfw_root}: cannot tell which people to exclude")
    excluded = lfw_pair_people(pairs)
    photos = folder_photos(lfw_root / "images", excluded, prefix="lfw:")
    log.info("LFW: %d training photos (people of pairs.txt excluded: %d)", len(photos), len(excluded))
    return photos


def pad_live_photos(pad_root: Path) -> list[Photo]:
    """The live (bona fide) photos of a presentation-attack folder with labels.tsv (pad_dev): real
    people in front of door-like cameras. Attack images are never taken: a student must not learn that
    a printed photo or a screen is the person. Subjects without an id (the CelebA-Spoof sample) are
    unlabelled."""
    from facegate.convert.pad.data import load_pad_dev

    photos = [Photo(s.path, "" if s.subject.endswith("-unknown") else f"pad:{s.subject}")
              for s in load_pad_dev(pad_root) if s.live]
    log.info("pad_dev: %d live photos (attacks excluded)", len(photos))
    return photos


def mine_wider(wider_root: Path, min_size: float = 64.0) -> list[Photo]:
    """Faces of at least `min_size` px (both sides) from WIDER photos, one Photo per face, no label."""
    from facegate.convert.evaluate.wider import read_gt_txt

    gt = read_gt_txt(wider_root / "wider_face_val_bbx_gt.txt")
    photos = []
    for rel, boxes in gt.items():
        path = wider_root / "images" / rel
        if not path.exists():
            continue
        for x, y, w, h in boxes:
            if w >= min_size and h >= min_size:
                photos.append(Photo(path, "", (float(x), float(y), float(x + w), float(y + h))))
    log.info("WIDER: %d faces of at least %.0f px", len(photos), min_size)
    return photos


def is_held_out(label: str, every: int) -> bool:
    """Deterministic identity split: the same people are held out on every machine and run."""
    if not label or every <= 0:
        return False
    return int(hashlib.sha1(label.encode()).hexdigest(), 16) % every == 0


def split_photos(photos: list[Photo], every: int = 8) -> tuple[list[Photo], list[Photo]]:
    """(train, held-out): whole labelled identities are held out, never single photos of a person
    the student also trains on, so validation measures generalisation to new people."""
    train = [p for p in photos if not is_held_out(p.label, every)]
    held = [p for p in photos if is_held_out(p.label, every)]
    return train, held


def sample(photos: list[Photo], limit: int | None, seed: int = 0) -> list[Photo]:
    if not limit or limit >= len(photos):
        return photos
    idx = np.random.default_rng(seed).choice(len(photos), size=limit, replace=False)
    return [photos[i] for i in sorted(idx)]


def write_holdout_folder(source: Path, out: Path, every: int = 8, prefix: str = "celeba:") -> int:
    """A folder of links to the identities `distill embedder` held out (never trained on), for
    calibrating the student's thresholds on people it has not seen. Returns the identity count."""
    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for person in sorted(p for p in source.iterdir() if p.is_dir()):
        if is_held_out(f"{prefix}{person.name}", every):
            link = out / person.name
            if not link.exists():
                link.symlink_to(person.resolve(), target_is_directory=True)
            count += 1
    if not count:
        raise DatasetError(f"no held-out identities under {source} (every {every})")
    return count
