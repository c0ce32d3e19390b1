"""`facegate calibrate thresholds`: score genuine and impostor pairs with a model file and write
the thresholds for the target FARs into its card (the only place the edge runtime reads them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.calibration.thresholds import DEFAULT_FARS, calibrate, identity_pair_scores
from facegate.convert.datasets import celeba_images
from facegate.convert.evaluate.embeddings import embed_files
from facegate.convert.evaluate.faces import FaceFinder
from facegate.convert.evaluate.pairs import identity_images, read_pairs
from facegate.edge.cards import load_card, write_card
from facegate.edge.errors import DatasetError
from facegate.edge.registry import get_embedder, load_detector


def calibrate_card(model: Path, data: Path | None = None, pairs: Path | None = None, root: Path | None = None,
                   per_identity: int = 10, fars=DEFAULT_FARS, command: str = "", progress: bool = True) -> dict:
    embedder = get_embedder(model)
    finder = FaceFinder(load_detector())
    if pairs:
        plist = read_pairs(pairs, root or pairs.parent)
        run = embed_files([p for pr in plist for p in (pr.a, pr.b)], embedder, finder, progress=progress)
        scores = np.array([float(run.vectors[p.a] @ run.vectors[p.b]) for p in plist])
        same = np.array([p.same for p in plist])
        genuine, impostor = scores[same], scores[~same]
        source = str(pairs)
    else:
        folder = Path(data) if data else celeba_images()
        paths, labels = identity_images(folder, per_identity)
        run = embed_files(paths, embedder, finder, progress=progress)
        genuine, impostor = identity_pair_scores(np.stack([run.vectors[p] for p in paths]), labels)
        source = f"{folder} ({len(set(labels))} identities, {len(paths)} images)"
    table = calibrate(genuine, impostor, fars)
    if not table:
        raise DatasetError(f"too few impostor pairs ({len(impostor)}) to calibrate any of the FARs {list(fars)}")
    card = load_card(model)
    card.thresholds = {k: v["threshold"] for k, v in table.items()}
    card.accuracy["calibration"] = {"source": source, "command": command, "genuine_pairs": int(len(genuine)),
                                    "impostor_pairs": int(len(impostor)), "images_without_face": len(run.no_face),
                                    "table": table}
    write_card(card, model)
    usage = model.with_name(model.name + ".USAGE.md")
    if usage.exists():        # the integrator's page quotes the thresholds: keep it in step with the card
        from facegate.convert.export.usage import write_usage
        write_usage(card, model)
    return {"thresholds": table, "genuine": int(len(genuine)), "impostor": int(len(impostor))}
