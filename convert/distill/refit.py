"""Refit the linear embedding head of a trained student on its own features.

A compressed student (`facegate distill compress`) learns its head by copying the full-width
student's embeddings. Its narrower backbone computes different features, and the copy inherits only
what the full-width head made of the old ones. Refitting the head the way epoch 0 of `distill
embedder --student peer` fits the full-width one uses the new features directly: ridge to the
teacher's targets over clean, mirrored and augmented views, then the relational refinement towards
the teacher's and the peer's similarities. The backbone is not touched, so speed and size stay
the same. The held-out identities are measured before and after; the new head is written whatever
they say, and the report shows both so the caller can keep the better file.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from facegate.convert.distill.embedder import NORMALISATION, embed_faces, heldout_metrics, save_student_file
from facegate.convert.distill.head import Refinement, fit_head, peer_crop_reference
from facegate.convert.distill.targets import TargetSet
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)


@dataclass
class RefitConfig:
    model: str                    # trained student .keras file with its card
    out: Path                     # folder for the refitted student.keras and its card
    views: int = 4
    ridge: float = 1e-2
    relational: float = 10.0      # 0: ridge only
    peer_mix: float = 0.5
    steps: int = 3000
    seed: int = 0
    progress: bool = True

    def to_json(self) -> dict:
        return {**asdict(self), "out": str(self.out)}


def heldout_numbers(model, val: TargetSet | None) -> dict:
    """`heldout_metrics` of the model's embeddings of the held-out faces ({} without any)."""
    if val is None or not len(val):
        return {}
    return heldout_metrics(embed_faces(model, val.centre_crops()), val)


def load_refittable(path: str):
    """The student as an Embedder whose backend holds the Keras model; ModelError, before any data is
    read, when the file is not a Keras student with the peer student's linear head."""
    from facegate.convert.distill.head import HEAD_CONV
    from facegate.edge.registry import get_embedder

    source = get_embedder(path)
    model = getattr(source.backend, "model", None)
    if model is None:
        raise ModelError(f"{path}: not a Keras student file; the head is refitted on a .keras student")
    if HEAD_CONV not in {layer.name for layer in model.layers}:
        raise ModelError(f"{path} has no {HEAD_CONV!r} layer: only students built on the pretrained "
                         "MobileFaceNet (`distill embedder --student peer` and its `distill compress` results) have "
                         "the linear head this refits")
    return source


def refit_student_head(cfg: RefitConfig, train: TargetSet, val: TargetSet | None, source=None) -> dict:
    """Refit the student's head on `train`, save it under cfg.out; held-out numbers before and after.
    `source`: the student already loaded by `load_refittable` (else it is loaded here)."""
    source = source or load_refittable(cfg.model)
    model = source.backend.model
    before = heldout_numbers(model, val)
    log.info("held-out before the refit: %s", before)
    refinement = Refinement(weight=cfg.relational, peer_mix=cfg.peer_mix, steps=cfg.steps)
    fit = fit_head(model, train, NORMALISATION, views=cfg.views, ridge=cfg.ridge, seed=cfg.seed,
                   progress=cfg.progress, refinement=refinement,
                   reference=peer_crop_reference(NORMALISATION) if cfg.relational > 0 and cfg.steps > 0 else None)
    after = heldout_numbers(model, val)
    log.info("held-out after the refit: %s", after)
    card = source.card
    student = dict(card.accuracy.get("student", {})) if card else {}
    student.setdefault("embedding_dim", int(model.output.shape[-1]))
    student["head_refit"] = {"from": cfg.model, **fit.to_dict()}
    path = cfg.out / "student.keras"
    save_student_file(model, path, metrics={"before": before, "after": after}, config=cfg.to_json(), student=student,
                      teacher=(card.teacher if card else "") or train.teacher, source="facegate distill head",
                      name=card.name if card else "facenet-student")
    return {"before": before, "after": after, "head": fit.to_dict(), "student": str(path),
            "train_faces": len(train), "val_faces": 0 if val is None else len(val)}


def refit_head(cfg: RefitConfig, data_folders: list[Path] | None = None, teacher: str | None = None,
               max_images: int | None = None, hold_out_every: int = 8, targets_cache: Path | None = None) -> dict:
    """Same photos, teacher targets and held-out identities as `facegate distill embedder`."""
    from facegate.convert.distill.pipeline import load_targets

    source = load_refittable(cfg.model)
    train, val = load_targets(data_folders, teacher, max_images, hold_out_every, cfg.seed, cfg.progress, targets_cache)
    cfg.out.mkdir(parents=True, exist_ok=True)
    return refit_student_head(cfg, train, val, source)
