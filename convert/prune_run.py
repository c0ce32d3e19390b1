"""`facegate prune`: prune a facegate Keras embedder, fine-tune it by distillation from the unpruned
model on aligned face crops, and save it as a .keras file with its card (then `facegate export`)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from facegate.convert.datasets import celeba_images
from facegate.convert.export.representative import representative_crops
from facegate.convert.prune import distill_finetune, prune_channels, prune_magnitude
from facegate.convert.teachers.facenet import ScaleSum
from facegate.edge.cards import ModelCard, write_card
from facegate.edge.face.embed import l2_normalise, normalise
from facegate.edge.registry import get_embedder

log = logging.getLogger(__name__)


def run_prune(model_spec: str, method: str = "structured", ratio: float = 0.25, pattern: str | None = None,
              data: Path | None = None, images: int = 600, steps: int = 200, batch_size: int = 16,
              learning_rate: float = 1e-4, out_dir: Path | None = None, command: str = "",
              progress: bool = True) -> tuple[Path, dict]:
    source = get_embedder(model_spec)
    model = source.backend.model
    spec = source.spec
    folder = Path(data) if data else celeba_images()
    crops = representative_crops(spec, folder, limit=images, progress=progress)
    n_val = max(8, len(crops) // 10)
    x = normalise(crops, spec.normalisation)
    targets = l2_normalise(model.predict(x, batch_size=32, verbose=0))
    custom = {"ScaleSum": ScaleSum}
    masks = None
    if method == "structured":
        # data-aware ranking and mean compensation on the fine-tune images (not the held-out ones)
        student, report = prune_channels(model, ratio, pattern, custom_objects=custom, data=x[n_val:n_val + 64])
    elif method == "magnitude":
        student, report, masks = prune_magnitude(model, ratio, pattern, custom_objects=custom)
    else:
        raise ValueError(f"pruning method must be 'structured' or 'magnitude', not {method!r}")

    def held_out_cosine() -> float:
        pred = l2_normalise(student.predict(x[:n_val], batch_size=32, verbose=0))
        return float(np.mean(np.sum(pred * targets[:n_val], axis=1)))

    before = held_out_cosine()
    t0 = time.perf_counter()
    losses = distill_finetune(student, targets[n_val:], x[n_val:], steps=steps, batch_size=batch_size,
                              learning_rate=learning_rate, masks=masks) if steps > 0 else []
    after = held_out_cosine()
    out_dir = Path(out_dir or Path("runs") / "prune")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{source.name}-{method}{int(round(100 * ratio))}"
    path = out_dir / f"{name}.keras"
    student.save(path)
    summary = {**report.to_dict(), "finetune_steps": steps, "finetune_images": int(len(x) - n_val),
               "finetune_seconds": round(time.perf_counter() - t0, 1), "loss_per_epoch": [round(v, 5) for v in losses],
               "heldout_cosine_before": round(before, 5), "heldout_cosine_after": round(after, 5),
               "data": str(folder), "command": command}
    card = ModelCard(name=name, task="embedding", file=path.name, sha256="", input=spec,
                     outputs=[{"name": "embedding", "dim": int(targets.shape[1]), "l2_normalise": True}],
                     format="keras", metric="cosine",
                     thresholds=dict(source.card.thresholds) if source.card else {},
                     accuracy={"pruning": summary}, teacher=source.name, source=f"pruned from {model_spec}",
                     notes="Thresholds inherited from the unpruned model: recalibrate with `facegate calibrate "
                           "thresholds` after export.")
    write_card(card, path)
    return path, summary
