"""`facegate calibrate pca`: fit a PCA projection of an embedder's outputs for reduced gallery templates,
calibrate its FAR thresholds in the reduced space, and write it beside the model.

Fitting faces: CelebA dev identities and LFW people who are not in pairs.txt (LFW pair people are never
seen, so LFW View 2 stays a fair test). One identity in `hold_out_every` of CelebA is kept out of the fit
and calibrates the thresholds, as `facegate calibrate thresholds` does for the card.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from facegate.calibration.thresholds import DEFAULT_FARS, calibrate, identity_pair_scores
from facegate.convert.evaluate.embeddings import embed_files
from facegate.convert.evaluate.faces import FaceFinder
from facegate.convert.evaluate.pairs import identity_images
from facegate.edge.errors import DatasetError
from facegate.edge.gallery.projection import fit_projection, projection_path
from facegate.edge.registry import embedder_path, get_embedder, load_detector

log = logging.getLogger(__name__)


def fit_pca(model: str | Path, dims: int, celeba: Path, lfw_root: Path | None, per_identity: int = 10,
            hold_out_every: int = 8, fars=DEFAULT_FARS, out: Path | None = None, command: str = "",
            progress: bool = True) -> dict:
    """Fit, calibrate and write `<model>.pca<dims>.npz`; returns what was done and measured."""
    from facegate.convert.distill.sources import lfw_training_photos
    beside = embedder_path(model)
    if out is None and beside is None:
        raise DatasetError(f"{model} is not one model file: give --out for the projection")
    embedder = get_embedder(model)
    finder = FaceFinder(load_detector())
    paths, labels = identity_images(Path(celeba), per_identity)
    people = sorted(set(labels))
    held = {p for i, p in enumerate(people) if hold_out_every and i % hold_out_every == 0}
    fit_paths = [p for p, lab in zip(paths, labels) if lab not in held]
    cal_paths = [p for p, lab in zip(paths, labels) if lab in held]
    cal_labels = [lab for lab in labels if lab in held]
    if len(set(cal_labels)) < 2:
        raise DatasetError("too few held-out identities to calibrate the projection's thresholds")
    if lfw_root is not None:
        fit_paths += [photo.path for photo in lfw_training_photos(Path(lfw_root))]
    run = embed_files(fit_paths + cal_paths, embedder, finder, progress=progress)
    fit_vectors = np.stack([run.vectors[p] for p in fit_paths])
    projection = fit_projection(fit_vectors, dims, embedder.card.sha256,
                                {"model": embedder.name, "fitted_on": f"{len(fit_paths)} faces: CelebA dev "
                                 f"({len(people) - len(held)} identities){' + LFW people outside pairs.txt' if lfw_root else ''}",
                                 "command": command})
    calibration_vectors = np.stack([run.vectors[p] for p in cal_paths])
    genuine, impostor = identity_pair_scores(projection.apply(calibration_vectors), cal_labels)
    table = calibrate(genuine, impostor, fars)
    if not table:
        raise DatasetError(f"too few impostor pairs ({len(impostor)}) to calibrate any of the FARs {list(fars)}")
    full_table = calibrate(*identity_pair_scores(calibration_vectors, cal_labels), fars)
    projection = replace(projection, thresholds={k: v["threshold"] for k, v in table.items()},
                         info={**projection.info, "calibrated_on": f"{len(cal_paths)} faces of {len(set(cal_labels))} "
                               "held-out CelebA dev identities", "calibration": table,
                               "full_dimension_calibration": full_table})
    path = projection.save(out or projection_path(beside, dims))
    return {"path": str(path), "dims": dims, "variance_kept": projection.info["variance_kept"],
            "faces": projection.info["faces"], "thresholds": table, "full_dimension": full_table,
            "sha256": projection.sha256}
