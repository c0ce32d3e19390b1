"""Export a liveness set (MiniFASNetV2 at 2.7x, V1SE at 4x) to TFLite fp16 / int8 and ONNX, one folder
per precision, each file with its card: crop scale, input (80x80 BGR 0-255), which output is live,
the fused threshold at a stated BPCER and the APCER/BPCER it measured; each exported file is run back
through facegate's own backend and compared with the Keras model before its card is written."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facegate.convert.export.onnx import export_onnx
from facegate.convert.export.tflite import export_tflite
from facegate.convert.pad.metrics import card_threshold, pad_metrics, threshold_at_bpcer
from facegate.convert.pad.minifasnet import INPUT_SIZE, LIVE_CLASS, PRETRAINED
from facegate.edge.backends import load_backend
from facegate.edge.cards import InputSpec, ModelCard, write_card
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)
#: folder suffix -> (file suffix, quantisation)
PRECISIONS = {"fp16": ("tflite", "fp16"), "int8": ("tflite", "int8"), "fp32": ("onnx", "fp32")}
#: an exported net may differ from its Keras source by at most this much in live probability (float
#: formats), and must take the same decision as Keras on at least this share of crops (every format)
PARITY_LIMIT = {"fp16": 0.02, "int8": 1.0, "fp32": 1e-4}
MIN_AGREEMENT = 0.95
LICENCE_NOTE = ("Derived from the MiniFASNet weights of minivision-ai/Silent-Face-Anti-Spoofing (commit b6d5f04a, "
                "Apache-2.0; see LICENSE-minifasnet in this folder)")


#: operators an int8 file keeps float: the softmax (probabilities near 0 and 1 matter at a threshold of
#: 0.96) and PReLU (no int8 kernel on LiteRT's fast path: an int8 PReLU makes each net ~8x slower here)
INT8_FLOAT_OPS = ("SOFTMAX", "PRELU")


#: the Keras layer each float-kept TFLite operator comes from
_OP_LAYERS = {"SOFTMAX": "Softmax", "PRELU": "PReLU"}


def present_ops(model, ops: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `ops` the model has layers for (a ReLU net has no PReLU to keep float, and its card
    must not say it has)."""
    classes = {type(layer).__name__ for layer in model.layers}
    return tuple(op for op in ops if _OP_LAYERS.get(op) in classes or op not in _OP_LAYERS)


def fine_tuned_source(name: str, epochs: int, model) -> str:
    """The card's source line of a fine-tuned net: the published weights, the fine-tuning, and whether
    its PReLUs were replaced by ReLU first (`liveness train --activation relu`)."""
    relu = not present_ops(model, ("PRELU",))
    return (source_line(name) + f"; fine-tuned on pad_dev, {epochs} epochs"
            + ("; PReLU replaced by ReLU before fine-tuning" if relu else ""))


@dataclass
class ThresholdSplit:
    """The validation faces a set's threshold was chosen on, for choosing it again per exported file:
    quantisation moves scores, and a threshold set at the 7th-lowest live score of the Keras nets can
    refuse two more live people through an int8 file (BPCER 6.3% where Keras had 4.7%)."""
    images: dict
    samples: list
    boxes: dict
    bpcer: float


def own_threshold(folder: Path, split: ThresholdSplit) -> tuple[float, dict]:
    """The exported set's own threshold at `split.bpcer` (as written: rounded down) and what it
    measures there, scored through the edge runtime exactly as the door scores a face."""
    from facegate.convert.pad.scorers import shipped
    scores = shipped(str(folder)).scores(split.images, split.samples, split.boxes)
    live = np.array([s.live for s in split.samples])
    threshold = card_threshold(threshold_at_bpcer(scores[live & ~np.isnan(scores)], split.bpcer))
    return threshold, pad_metrics(scores, live, [s.attack for s in split.samples], threshold)


def export_set(models: dict[str, tuple], out_root: Path, set_name: str, threshold: float, accuracy: dict,
               representative: dict[str, np.ndarray], source: dict[str, str], licence: Path | None = None,
               precisions: tuple[str, ...] = ("fp16", "int8", "fp32"),
               float_ops: tuple[str, ...] = INT8_FLOAT_OPS, split: ThresholdSplit | None = None) -> dict:
    """models: name -> (keras model, crop scale); representative: name -> (N, 80, 80, 3) BGR crops.
    With `split`, each precision's cards carry that file's own threshold at `split.bpcer` and its
    measured APCER/BPCER there (`accuracy["fine_tuned"]`), not the Keras nets'. Returns
    name/precision -> parity numbers."""
    parity = {}
    for precision in precisions:
        suffix, quant = PRECISIONS[precision]
        folder = out_root / f"{set_name}-{precision}"
        folder.mkdir(parents=True, exist_ok=True)
        if licence:
            shutil.copyfile(licence, folder / "LICENSE-minifasnet")
        cards = {}
        for name, (model, scale) in models.items():
            path = folder / f"{name}.{suffix}"
            reps = representative[name]
            kept_float = present_ops(model, float_ops) if quant == "int8" else ()
            if suffix == "tflite":
                export_tflite(model, path, quant, representative=_representative(reps) if quant == "int8" else None,
                              float_ops=kept_float)
            else:
                export_onnx(model, path)
            keras_p = model.predict(reps, verbose=0)[:, LIVE_CLASS]
            backend = load_backend(path)
            got = np.concatenate([backend.run([reps[i:i + 1]])[0][:, LIVE_CLASS] for i in range(len(reps))])
            diff = float(np.abs(got - keras_p).max())
            agree = float(((got >= threshold) == (keras_p >= threshold)).mean())
            parity[f"{name}/{precision}"] = {"max_abs_diff": round(diff, 5), "mean_abs_diff":
                                             round(float(np.abs(got - keras_p).mean()), 5),
                                             "decision_agreement": round(agree, 4), "n": len(reps)}
            if diff > PARITY_LIMIT[precision] or agree < MIN_AGREEMENT:
                path.unlink()
                raise ModelError(f"{folder.name}/{path.name}: live probability differs from the Keras model by up to "
                                 f"{diff:.4f} (limit {PARITY_LIMIT[precision]}), same decision on {agree:.1%} of "
                                 f"crops (at least {MIN_AGREEMENT:.0%}): not exported")
            card = ModelCard(
                name=f"{name}-{precision}", task="liveness", file=path.name, sha256="",
                input=InputSpec(size=INPUT_SIZE, layout="NHWC", color="BGR", normalisation="none",
                                alignment="none", crop_scale=scale),
                outputs=[{"name": "probabilities", "classes": 3, "live_index": LIVE_CLASS}],
                format=suffix, metric="live-probability",
                quantization=quant + "".join(f" ({op} float)" for op in kept_float),
                thresholds={"live": card_threshold(threshold)},
                accuracy={**accuracy, "parity_vs_keras": parity[f"{name}/{precision}"],
                          "date": dt.date.today().isoformat()},
                source=source[name], notes=LICENCE_NOTE)
            write_card(card, path)
            cards[name] = (path, card)
            log.info("%s: parity %.5f, agreement %.4f", path, diff, agree)
        if split is not None:
            own, measured = own_threshold(folder, split)
            log.info("%s: its own threshold %.4f (the Keras nets' %.4f), BPCER %.3f, APCER %.3f", folder.name,
                     own, card_threshold(threshold), measured["bpcer"], measured["apcer"])
            for name, (path, card) in cards.items():
                parity[f"{name}/{precision}"]["card_threshold"] = own
                write_card(replace(card, thresholds={"live": own}, accuracy={
                    **card.accuracy, "fine_tuned": measured, "keras_threshold": card_threshold(threshold),
                    "threshold_chosen_with": f"this {precision} set's own scores"}), path)
    return parity


def spread(samples: list, n: int) -> list:
    """`n` samples evenly spaced through the list (all of them if it is shorter). pad_dev's training
    split lists its sources one after another, and its first 250 images are all NUAA webcam frames:
    an int8 file calibrated on those clipped other cameras' activations (a CelebA-Spoof live face
    went from 0.97 to 0.70 through it)."""
    if len(samples) <= n:
        return list(samples)
    return [samples[i] for i in np.linspace(0, len(samples) - 1, n).round().astype(int)]


def representative_crops(models: dict[str, tuple], images: dict, samples: list, boxes: dict,
                         n: int = 200) -> dict[str, np.ndarray]:
    """Each net's clean crops of `n` samples with a face, spread over every source: the int8
    calibration set and the parity check of every export."""
    from facegate.convert.pad.finetune import crops
    chosen = spread([s for s in samples if boxes.get(s.key) is not None], n)
    return {name: crops(images, chosen, boxes, scale)[0] for name, (_, scale) in models.items()}


def _representative(crops: np.ndarray):
    def generate():
        for x in crops[:200]:
            yield [x[None]]
    return generate


def source_line(name: str) -> str:
    variant, scale, filename, digest = PRETRAINED[name]
    return f"{filename} (sha256 {digest}), MiniFASNet{variant}, crop scale {scale}"


def export_trained(work: Path, pad_dir: Path, out_root: Path, set_name: str = "minifasnet",
                   precisions: tuple[str, ...] = ("fp16", "int8", "fp32"), float_ops: tuple[str, ...] = INT8_FLOAT_OPS,
                   licence: Path | None = None, command: str = "") -> dict:
    """Export the fine-tuned nets of a `facegate liveness train --work WORK` folder again (another
    precision, other float operators) with the threshold and accuracy that run measured; the int8
    representative crops are the same training-split faces."""
    import json

    import keras

    from facegate.convert.pad.data import face_boxes, load_pad_dev, subject_split
    from facegate.convert.pad.finetune import load_images
    from facegate.edge.registry import load_detector
    report_path = work / "report.json"
    try:
        report = json.loads(report_path.read_text())
        threshold, accuracy, epochs = float(report["threshold"]), report["accuracy"], report["accuracy"]["epochs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{report_path} is not the report of a `facegate liveness train` run "
                         f"(threshold and accuracy needed): {exc}") from exc
    models = {}
    for name, (_, scale, _, _) in PRETRAINED.items():
        checkpoint = work / f"{name}.keras"
        if not checkpoint.is_file():
            raise ModelError(f"{checkpoint} not found: the training run's checkpoints are needed")
        models[name] = (keras.models.load_model(checkpoint, compile=False), scale)
    train, val = subject_split(load_pad_dev(pad_dir))
    cache = work / "pad_boxes.npz"
    if cache.is_file():                         # the run's own images (a tiny run saw only some of pad_dev)
        known = set(np.load(cache)["names"].astype(str))
        train = [s for s in train if s.key in known] or train
        val = [s for s in val if s.key in known] or val
    train = spread(train, 250)
    boxes = face_boxes(train + val, load_detector(), cache)
    images = load_images(train + val)
    reps = representative_crops(models, images, train, boxes)
    if command:
        accuracy = {**accuracy, "export_command": command}
    return export_set(models, out_root, set_name, threshold, accuracy, reps,
                      {n: fine_tuned_source(n, epochs, m) for n, (m, _) in models.items()},
                      licence=licence, precisions=precisions, float_ops=float_ops,
                      split=ThresholdSplit(images, val, boxes, float(accuracy.get("target_bpcer", 0.05))))


#: the published nets' own decision rule (Silent-Face-Anti-Spoofing's test.py: live when the live class
#: wins the fused 3-way softmax; a live probability above 0.5 always wins)
PUBLISHED_THRESHOLD = 0.5


def export_published(weights_dir: Path, pad_dir: Path, out_root: Path, set_name: str = "minifasnet-published",
                     precisions: tuple[str, ...] = ("fp16",), command: str = "") -> dict:
    """The published MiniFASNet pair as imported (no fine-tuning), for sites that set their own threshold
    (`facegate calibrate liveness`): a new camera is where these nets beat the fine-tuned ones
    (docs/benchmarks.md, leave one source out). The card states the authors' rule and what it measured on
    pad_dev's subject-disjoint validation split."""
    from facegate.convert.pad.data import face_boxes, load_pad_dev, subject_split
    from facegate.convert.pad.finetune import load_images
    from facegate.convert.pad.metrics import pad_metrics
    from facegate.convert.pad.minifasnet import pretrained
    from facegate.convert.pad.scorers import fused_scores
    from facegate.edge.registry import load_detector
    models = {name: pretrained(name, weights_dir) for name in PRETRAINED}
    train, val = subject_split(load_pad_dev(pad_dir))
    some = spread(train, 250)
    boxes = face_boxes(some + val, load_detector())
    images = load_images(some + val)
    reps = representative_crops(models, images, some, boxes)
    scores = fused_scores(models, images, val, boxes)
    metrics = pad_metrics(scores, np.array([s.live for s in val]), [s.attack for s in val], PUBLISHED_THRESHOLD)
    accuracy = {"dataset": "pad_dev (NUAA, MSU-MFSD, CelebA-Spoof sample)",
                "split": f"subject-disjoint validation ({len(val)} images), never trained on",
                "threshold_rule": "the authors' (live class wins); set a site's own with `facegate calibrate liveness`",
                "published_rule": metrics, "command": command}
    return export_set(models, out_root, set_name, PUBLISHED_THRESHOLD, accuracy, reps,
                      {n: source_line(n) + "; as published (not fine-tuned)" for n in models},
                      licence=weights_dir / "LICENSE", precisions=precisions)
