"""Export a liveness set (MiniFASNetV2 at 2.7x, V1SE at 4x) to TFLite fp16 / int8 and ONNX, one folder
per precision, each file with its card: crop scale, input (80x80 BGR 0-255), which output is live,
the fused threshold at a stated BPCER and the APCER/BPCER it measured; each exported file is run back
through facegate's own backend and compared with the Keras model before its card is written."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import numpy as np

from facegate.convert.export.onnx import export_onnx
from facegate.convert.export.tflite import export_tflite
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


def export_set(models: dict[str, tuple], out_root: Path, set_name: str, threshold: float, accuracy: dict,
               representative: dict[str, np.ndarray], source: dict[str, str], licence: Path | None = None,
               precisions: tuple[str, ...] = ("fp16", "int8", "fp32")) -> dict:
    """models: name -> (keras model, crop scale); representative: name -> (N, 80, 80, 3) BGR crops.
    Returns name/precision -> parity numbers."""
    parity = {}
    for precision in precisions:
        suffix, quant = PRECISIONS[precision]
        folder = out_root / f"{set_name}-{precision}"
        folder.mkdir(parents=True, exist_ok=True)
        if licence:
            shutil.copyfile(licence, folder / "LICENSE-minifasnet")
        for name, (model, scale) in models.items():
            path = folder / f"{name}.{suffix}"
            reps = representative[name]
            if suffix == "tflite":
                export_tflite(model, path, quant, representative=_representative(reps) if quant == "int8" else None,
                              float_ops=("SOFTMAX",) if quant == "int8" else ())
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
                format=suffix, quantization=quant, metric="live-probability",
                thresholds={"live": round(float(threshold), 4)},
                accuracy={**accuracy, "parity_vs_keras": parity[f"{name}/{precision}"],
                          "date": dt.date.today().isoformat()},
                source=source[name], notes=LICENCE_NOTE)
            write_card(card, path)
            log.info("%s: parity %.5f, agreement %.4f", path, diff, agree)
    return parity


def _representative(crops: np.ndarray):
    def generate():
        for x in crops[:200]:
            yield [x[None]]
    return generate


def source_line(name: str) -> str:
    variant, scale, filename, digest = PRETRAINED[name]
    return f"{filename} (sha256 {digest}), MiniFASNet{variant}, crop scale {scale}"
