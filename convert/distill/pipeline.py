"""From folders of photos to a trained student: gather photos, cache teacher targets, split off
held-out identities, train. The CLI and the tests call these functions."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.convert.distill.embedder import DistillConfig, Trainer
from facegate.convert.distill.sources import (
    Photo,
    folder_photos,
    is_held_out,
    lfw_training_photos,
    mine_wider,
    pad_live_photos,
    sample,
)
from facegate.convert.distill.targets import TargetSet, build_targets
from facegate.edge.downloads import cache_dir
from facegate.edge.errors import DatasetError

log = logging.getLogger(__name__)


def default_photos(wider_min_size: float = 48.0) -> list[Photo]:
    """The development training set: CelebA crops, LFW people outside pairs.txt, large WIDER faces,
    pad_dev's live people (door-camera faces; never its attacks)."""
    from facegate.convert.datasets import celeba_images, lfw_dir, shared_datasets, wider_dir

    photos: list[Photo] = []
    if celeba_images().is_dir():
        photos += folder_photos(celeba_images(), prefix="celeba:")
    if (lfw_dir() / "pairs.txt").exists():
        photos += lfw_training_photos(lfw_dir())
    if (wider_dir() / "wider_face_val_bbx_gt.txt").exists():
        photos += mine_wider(wider_dir(), wider_min_size)
    if (shared_datasets() / "pad_dev" / "labels.tsv").exists():
        photos += pad_live_photos(shared_datasets() / "pad_dev")
    if not photos:
        raise DatasetError("none of the default training datasets were found (../shared/datasets or "
                           "$FACEGATE_SHARED/datasets); pass --data FOLDER with face photos")
    return photos


def default_teacher() -> str:
    """The fastest exact copy of the teacher available: its fp32 ONNX export (cosine 1.0 to Keras)
    when `facegate export` made one, else the Keras teacher itself."""
    from facegate.edge.registry import teacher_export_path
    onnx = teacher_export_path().with_suffix(".onnx")
    return str(onnx) if onnx.exists() and onnx.with_name(onnx.name + ".json").exists() else "facenet-teacher"


def gather_photos(data_folders: list[Path] | None, max_images: int | None, seed: int = 0) -> list[Photo]:
    """Photos from the given identity folders (default: the development datasets), optionally sampled."""
    photos = [p for f in data_folders for p in folder_photos(f)] if data_folders else default_photos()
    return sample(photos, max_images, seed)


def prepare_targets(photos: list[Photo], teacher: str | None = None, progress: bool = True,
                    cache: Path | None = None) -> TargetSet:
    """The teacher's targets for these photos, cached under `cache` (default: the user cache's
    distill/ folder, shared by every run on the same photos and teacher)."""
    from facegate.edge.registry import get_embedder, load_detector

    return build_targets(photos, get_embedder(teacher or default_teacher()), load_detector(),
                         cache or cache_dir() / "distill", progress=progress)


def held_out_mask(labels: np.ndarray, hold_out_every: int) -> np.ndarray:
    """Which faces belong to held-out identities (all False when nothing is held out)."""
    return np.array([is_held_out(lab, hold_out_every) for lab in labels], bool)     # every <= 0: none


def split_targets(data: TargetSet, hold_out_every: int) -> tuple[TargetSet, TargetSet | None]:
    held = held_out_mask(data.labels, hold_out_every)
    if not held.any():
        return data, None
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def load_targets(data_folders: list[Path] | None, teacher: str | None, max_images: int | None, hold_out_every: int,
                 seed: int, progress: bool, targets_cache: Path | None) -> tuple[TargetSet, TargetSet | None]:
    """Gather the photos, cache the teacher's targets and hold out identities: (train, held-out) —
    the same data for everything that fits an embedder student (distill, compress, head)."""
    photos = gather_photos(data_folders, max_images, seed)
    log.info("%d training photos", len(photos))
    data = prepare_targets(photos, teacher, progress=progress, cache=targets_cache)
    train, val = split_targets(data, hold_out_every)
    log.info("training on %d faces, validating on %d faces of held-out identities", len(train),
             0 if val is None else len(val))
    return train, val


def train_on_targets(trainer, cfg, data_folders: list[Path] | None, teacher: str | None, max_images: int | None,
                     hold_out_every: int, resume: bool, targets_cache: Path | None) -> dict:
    """`load_targets`, then `trainer(cfg, train, val).fit()` (distill, compress)."""
    train, val = load_targets(data_folders, teacher, max_images, hold_out_every, cfg.seed, cfg.progress, targets_cache)
    result = trainer(cfg, train, val).fit(resume=resume)
    result.update({"train_faces": len(train), "val_faces": 0 if val is None else len(val),
                   "student": str(cfg.out / "student.keras")})
    return result


def distill_embedder(cfg: DistillConfig, data_folders: list[Path] | None = None, teacher: str | None = None,
                     max_images: int | None = None, hold_out_every: int = 8, resume: bool = True,
                     targets_cache: Path | None = None) -> dict:
    return train_on_targets(Trainer, cfg, data_folders, teacher, max_images, hold_out_every, resume, targets_cache)
