"""Export a facegate Keras embedder to an edge artifact, prove it is still the same model, and
write its card and USAGE.md.

Validation, in the order a reviewer would ask:
1. parity: embeddings of held-out aligned faces from the exported file (run through the edge
   backend, as a board would) against the Keras source — mean and minimum cosine, all finite.
   Below the floor the export fails (non-zero exit) and the file is set aside as `.rejected`.
2. LFW accuracy on a fold-balanced subset (or the full 6000 pairs with `full_lfw`), when LFW is
   available; 3. size on disk; 4. latency per face on its runtime. All of it goes into the card.
Formats that cannot run here (Core ML on Linux) are checked through their spec, and the card says so.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.convert.datasets import lfw_dir as shared_lfw_dir
from facegate.convert.export.formats import exporter, resolve_format, validate
from facegate.convert.export.representative import aligned_crops, representative_dataset, sample_images
from facegate.convert.export.usage import write_usage
from facegate.convert.fuse import fuse_linear_convs
from facegate.edge.backends import load_backend
from facegate.edge.cards import ModelCard, write_card
from facegate.edge.downloads import celebrity5_dir
from facegate.edge.errors import ModelError, UsageError
from facegate.edge.face.embed import Embedder
from facegate.edge.registry import get_embedder
from facegate.edge.timing import median_ms

log = logging.getLogger(__name__)

#: minimum mean cosine to the Keras source, per quantisation
PARITY_FLOORS = {"fp32": 0.999, "fp16": 0.999, "dynamic": 0.99, "int8": 0.98}


@dataclass
class ExportResult:
    path: Path
    card: ModelCard
    parity: dict


def size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def latency_ms(backend, x: np.ndarray, runs: int = 10) -> float:
    return median_ms(lambda: backend.run([x]), runs)


def check_parity(reference: np.ndarray, exported: np.ndarray, floor: float, name: str) -> dict:
    """Cosine of each exported embedding to its source; ModelError below the floor or if any
    output is not finite (the weightless-TFLite trap gives NaN)."""
    if not np.all(np.isfinite(exported)):
        raise ModelError(f"{name}: the exported model outputs NaN/inf — it was written without its weights "
                         "(e.g. TFLiteConverter.from_concrete_functions on a Keras 3 model)")
    cos = np.sum(reference * exported, axis=1)
    result = {"cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)}
    if cos.mean() < floor:
        raise ModelError(f"{name}: mean cosine to the source model {cos.mean():.4f} is below the floor {floor}")
    return result


def _reject(path: Path) -> Path:
    bad = path.with_name(path.name + ".rejected")
    if bad.is_dir():
        shutil.rmtree(bad)
    elif bad.exists():
        bad.unlink()
    path.rename(bad)
    return bad


def lfw_accuracy(path: Path, lfw_dir: Path, max_pairs: int | None, progress: bool) -> dict:
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.evaluate.pairs import balanced_subset, read_lfw_pairs
    from facegate.convert.evaluate.verification import evaluate_pairs
    from facegate.edge.registry import load_detector

    pairs = balanced_subset(read_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images"), max_pairs)
    # the reference (teacher) detector, so every embedder's LFW number is measured on the same crops
    r = evaluate_pairs(pairs, get_embedder(path), FaceFinder(load_detector("mtcnn-teacher")),
                       path.parent / "validation",
                       path.stem + "_lfw", f"LFW ({len(pairs)} pairs)", command="facegate export (validation)",
                       progress=progress)
    return {k: r[k] for k in ("pairs", "accuracy_mean", "accuracy_std", "roc_auc", "tar_at_far_1e-3")}


def equalized_copy(model, representative, batch: int = 50):
    """A copy of `model` with its channels equalised for int8 (convert/equalize.py): same function,
    activation ranges int8 can hold. Models without equalisable chains come back unchanged."""
    import keras

    from facegate.convert.equalize import equalize, find_chains
    if not find_chains(model):
        return model, {"chains": 0}
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    faces = np.concatenate([sample[0] for sample in representative()])
    return copy, equalize(copy, [faces[i:i + batch] for i in range(0, len(faces), batch)])


def prepared_for_export(model, representative=None, fuse: bool = True, equalize: bool = True):
    """The graph export converts: linear conv pairs folded (convert/fuse.py) and, for int8 (when a
    representative set is given), channels equalised. Both keep the function. Returns (model, fusion
    summary or None, equalisation summary or None); the input model is not changed."""
    fusion = equalization = None
    if fuse:
        model, fusion = fuse_linear_convs(model)
    if representative is not None and equalize:
        model, equalization = equalized_copy(model, representative)
    return model, fusion, equalization


def export_model(model_spec: str, fmt_name: str, quant: str = "fp32", out_dir: Path | None = None,
                 data: Path | None = None, fraction: float = 1.0, calib_images: int = 200, equalize: bool = True,
                 fuse: bool = True, parity_data: Path | None = None,
                 floor: float | None = None, opset: int = 13, io_type: str = "float", float_ops: tuple[str, ...] = (),
                 lfw_dir: Path | None = None, lfw_pairs: int | None = 600, full_lfw: bool = False,
                 command: str = "", progress: bool = True) -> ExportResult:
    fmt = resolve_format(fmt_name)
    validate(fmt, quant)
    if not 0 < fraction <= 1:
        raise UsageError(f"--fraction must be in (0, 1], got {fraction}")
    source = get_embedder(model_spec)
    model = getattr(source.backend, "model", None)
    if model is None:
        raise ModelError(f"{model_spec} is not a Keras model; export starts from a Keras model")
    spec = source.spec
    out_dir = Path(out_dir or Path("runs") / "export" / source.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if float_ops and (fmt.name != "tflite" or quant != "int8"):
        raise UsageError("--float-ops keeps named operators float inside an int8 TFLite file: it needs "
                                  "--format tflite --quant int8")
    kept = "".join(f"_float-{op.lower()}" for op in float_ops)
    path = out_dir / f"{source.name}_{quant}{kept}{'_int8io' if io_type == 'int8' else ''}{fmt.suffix}"
    representative = representative_dataset(spec, data, limit=calib_images, fraction=fraction,
                                            progress=progress) if quant == "int8" else None
    model, fusion, equalization = prepared_for_export(model, representative, fuse=fuse, equalize=equalize)
    exporter(fmt)(model, path, quant=quant, representative=representative, opset=opset, io_type=io_type,
                  float_ops=tuple(float_ops))

    parity_folder = Path(parity_data) if parity_data else celebrity5_dir() / "val"
    crops, used = aligned_crops(sample_images(parity_folder, 64), spec.size, spec.alignment, progress=progress)
    reference = source.embed(crops)
    accuracy: dict = {"parity_vs_source": {"faces": len(used), "data": str(parity_folder)}}
    if fusion and fusion.get("fused_pairs"):
        accuracy["fused_linear_convs"] = fusion
    if equalization and equalization.get("chains"):
        accuracy["channel_equalization"] = equalization
    notes = ""
    if fmt.runnable_here:
        backend = load_backend(path)
        exported = Embedder(backend, spec, path.name, identity=path.name).embed(crops)
        try:
            accuracy["parity_vs_source"].update(
                check_parity(reference, exported, PARITY_FLOORS[quant] if floor is None else floor, path.name))
        except ModelError as exc:
            raise ModelError(f"export failed validation: {exc} (kept for inspection as {_reject(path).name})") from exc
        accuracy["latency_ms_per_face"] = {backend.name: latency_ms(backend, np.zeros((1, spec.size, spec.size, 3),
                                                                                       np.float32))}
    else:
        from facegate.convert.export.coreml import coreml_spec_summary
        accuracy["parity_vs_source"]["spec"] = coreml_spec_summary(path) if fmt.name == "coreml" else {}
        notes = ("Not runnable on this machine (Core ML prediction needs macOS): checked through its spec "
                 "(inputs, outputs, shapes), not by running it. The runnable exports of the same source carry parity.")
    accuracy["size_bytes"] = size_bytes(path)
    accuracy["export_command"] = command
    card = ModelCard(
        name=f"{source.name}-{quant}", task="embedding", file=path.name, sha256="", input=spec,
        outputs=[{"name": "embedding", "dim": int(reference.shape[1]), "l2_normalise": True}],
        version="1", format=fmt.name, quantization=quant + ("/int8-io" if io_type == "int8" else "") +
        "".join(f" ({op} float)" for op in float_ops),
        metric="cosine", thresholds=dict(source.card.thresholds) if source.card else {}, accuracy=accuracy,
        teacher=source.card.teacher if source.card else None, source=f"{model_spec} ({source.identity})", notes=notes)
    write_card(card, path)
    lfw = Path(lfw_dir) if lfw_dir else shared_lfw_dir()
    if fmt.runnable_here and (lfw / "pairs.txt").exists() and (full_lfw or lfw_pairs):
        log.info("checking %s on LFW (%s pairs; --lfw-pairs 0 skips it)", path.name, "all 6000" if full_lfw else lfw_pairs)
        card.accuracy["lfw"] = r = lfw_accuracy(path, lfw, None if full_lfw else lfw_pairs, progress)
        log.info("LFW check of %s: %.2f%% ± %.2f on %d pairs", path.name, 100 * r["accuracy_mean"],
                 100 * r["accuracy_std"], r["pairs"])
        write_card(card, path)
    write_usage(card, path)
    return ExportResult(path, card, accuracy["parity_vs_source"])
