"""Export a facegate Keras embedder to an edge artifact, prove it is still the same model, and
write its card.

Validation: embeddings of held-out aligned faces from the exported file (run through the edge
backend, as a board would) against the Keras source: mean and minimum cosine. Below the floor the
export fails (non-zero exit) and the file is removed. Formats that cannot run here (Core ML on
Linux) are checked through their spec instead, and the card says so.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.calibration.faces import aligned_crops, sample_images
from facegate.calibration.representative import representative_dataset
from facegate.convert.export.formats import ExportArgumentError, exporter, resolve_format, validate
from facegate.convert.registry import resolve_embedder
from facegate.edge.backends import load_backend
from facegate.edge.cards import ModelCard, write_card
from facegate.edge.downloads import celebrity5_dir
from facegate.edge.embed import Embedder
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

#: minimum mean cosine to the Keras source, per quantisation
PARITY_FLOORS = {"fp32": 0.999, "fp16": 0.999, "dynamic": 0.99, "int8": 0.98}


@dataclass
class ExportResult:
    path: Path
    card: ModelCard
    parity: dict


def _size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _latency_ms(backend, x: np.ndarray, runs: int = 10) -> float:
    backend.run([x])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.run([x])
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)), 2)


def export_model(model_spec: str, fmt_name: str, quant: str = "fp32", out_dir: Path | None = None,
                 data: Path | None = None, fraction: float = 1.0, parity_data: Path | None = None,
                 floor: float | None = None, opset: int = 13, command: str = "", progress: bool = True) -> ExportResult:
    fmt = resolve_format(fmt_name)
    validate(fmt, quant)
    if not 0 < fraction <= 1:
        raise ExportArgumentError(f"--fraction must be in (0, 1], got {fraction}")
    source = resolve_embedder(model_spec)
    model = getattr(source.backend, "model", None)
    if model is None:
        raise ModelError(f"{model_spec} is not a Keras model; export starts from a Keras model")
    spec = source.spec
    out_dir = Path(out_dir or Path("runs") / "export" / source.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{source.name}_{quant}{fmt.suffix}"
    representative = None
    if quant == "int8":
        representative = representative_dataset(spec, data, fraction=fraction, progress=progress)
    exporter(fmt)(model, path, quant=quant, representative=representative, opset=opset)

    # parity on held-out aligned faces
    parity_folder = Path(parity_data) if parity_data else celebrity5_dir() / "val"
    crops, used = aligned_crops(sample_images(parity_folder, 64), spec.size, spec.alignment, progress=progress)
    reference = source.embed(crops)
    notes = ""
    parity: dict = {"faces": len(used), "data": str(parity_folder)}
    if fmt.runnable_here:
        backend = load_backend(path)
        exported = Embedder(backend, spec, path.name, identity=path.name).embed(crops)
        cos = np.sum(reference * exported, axis=1)
        parity.update({"cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)})
        limit = PARITY_FLOORS[quant] if floor is None else floor
        if not np.all(np.isfinite(exported)) or cos.mean() < limit:
            bad = path.with_name(path.name + ".rejected")
            shutil.rmtree(bad, ignore_errors=True) if bad.is_dir() else bad.unlink(missing_ok=True)
            path.rename(bad)
            raise ModelError(f"export failed validation: mean cosine to the Keras model {cos.mean():.4f} < floor "
                             f"{limit} (kept for inspection as {bad.name})")
        x1 = np.zeros((1, spec.size, spec.size, 3), np.float32)
        parity["latency_ms_batch1"] = _latency_ms(backend, x1)
    else:
        from facegate.convert.export.coreml import coreml_spec_summary
        summary = coreml_spec_summary(path) if fmt.name == "coreml" else {}
        parity["spec"] = summary
        notes = ("Core ML prediction needs macOS: this file was checked through its spec (inputs/outputs/shapes), "
                 "not run. Parity is guaranteed only for the runnable formats exported from the same model.")
    card = ModelCard(
        name=f"{source.name}-{quant}", task="embedding", file=path.name, sha256="", input=spec,
        outputs=[{"name": "embedding", "dim": int(reference.shape[1]), "l2_normalise": True}],
        version="1", format=fmt.name, quantization=quant, metric="cosine",
        thresholds=dict(source.card.thresholds) if source.card else {},
        accuracy={"parity_vs_source": parity, "size_bytes": _size_bytes(path), "export_command": command},
        teacher=source.card.teacher if source.card else None,
        source=f"{model_spec} ({source.identity})", notes=notes)
    write_card(card, path)
    return ExportResult(path, card, parity)
