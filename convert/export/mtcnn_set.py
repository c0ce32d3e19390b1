"""Export a set of MTCNN nets (teacher or student) as `pnet/rnet/onet.{tflite,onnx}` + cards, and
prove the exported cascade still detects what the Keras nets detect.

fp32: every output within `tolerance` of Keras on a random probe and the full cascade on real photos
must agree (same face count, IoU >= 0.99), else the export fails. int8 (full-integer TFLite, and an
ONNX QDQ graph converted from it): calibrated on the nets' own training crops; the cascade agreement
is measured and written into the cards, and the export fails only if faces are lost or found in
excess on more than `int8_max_count_mismatch` of the photos.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facegate.convert.keras_backend import KerasBackend
from facegate.convert.teachers.mtcnn import NET_INPUT
from facegate.edge.backends import load_backend
from facegate.edge.cards import InputSpec, ModelCard, load_card, write_card
from facegate.edge.detect.mtcnn import NET_NORMALISATION
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

NETS = ("pnet", "rnet", "onet")
OUTPUTS = {
    "pnet": [{"name": "box", "dim": 4}, {"name": "prob", "dim": 2}],
    "rnet": [{"name": "box", "dim": 4}, {"name": "prob", "dim": 2}],
    "onet": [{"name": "box", "dim": 4}, {"name": "landmarks", "dim": 10}, {"name": "prob", "dim": 2}],
}


def cascade_agreement(keras_nets: dict, folder: Path, fmt: str, images: list[np.ndarray]) -> dict:
    """Run the full cascade with the Keras nets and with the exported files on real photos:
    matched-box IoU, score difference and face-count agreement (what matters for a detector)."""
    from facegate.edge.detect import MTCNN
    from facegate.edge.detect.boxes import pairwise_overlap
    ref = MTCNN(*(KerasBackend(keras_nets[n]) for n in NETS))
    exp = MTCNN.from_files(folder, suffix=f".{fmt}")
    ious, dscore, same_count = [], [], 0
    for img in images:
        a, b = ref.detect(img), exp.detect(img)
        same_count += len(a) == len(b)
        if a and b:
            ov = pairwise_overlap(np.array([f.box for f in a]), np.array([f.box for f in b]))
            ious += ov.max(axis=1).tolist()
            dscore += [abs(fa.score - b[j].score) for fa, j in zip(a, ov.argmax(axis=1))]
    return {"images": len(images), "same_face_count": same_count, "faces": len(ious),
            "min_iou": round(float(min(ious)), 4) if ious else None,
            "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "max_score_diff": round(float(max(dscore)), 6) if dscore else None}


def agreement_images() -> list[np.ndarray]:
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.images import list_images, load_rgb
    return [load_rgb(p) for p in list_images(celebrity5_dir() / "val")[::3]]


def _probe(net: str, rng: np.random.Generator) -> np.ndarray:
    size = NET_INPUT[net]
    return rng.normal(size=(4, 37, 53, 3) if net == "pnet" else (4, size, size, 3)).astype(np.float32)


def export_mtcnn_set(nets: dict, out_dir: str | Path, name: str, source: str, quant: str = "fp32",
                     representative: dict[str, np.ndarray] | None = None, tolerance: float = 1e-4,
                     notes: str = "", extra: dict | None = None,
                     int8_max_count_mismatch: float = 0.34,
                     face_thresholds: tuple[float, float, float] | None = None) -> list[Path]:
    """Write the three nets in both formats with cards into `out_dir`; returns the written paths.

    `face_thresholds` (P, R, O) go into each net's card as its cascade score threshold ("face"),
    which `load_detector` uses unless the caller sets thresholds: a student tuned to run at other
    thresholds than the reference 0.6 / 0.7 / 0.8 carries them."""
    from facegate.convert.export.onnx import export_onnx, export_onnx_from_tflite
    from facegate.convert.export.tflite import export_tflite

    if quant not in ("fp32", "int8"):
        raise ValueError(f"MTCNN sets export as fp32 or int8, not {quant!r}")
    if quant == "int8" and not representative:
        raise ValueError("int8 export needs representative crops per net")
    out_dir = Path(out_dir)
    written: list[Path] = []
    rng = np.random.default_rng(0)
    for net in NETS:
        model = nets[net]
        probe = _probe(net, rng)
        reference = KerasBackend(model).run([probe])
        if quant == "fp32":
            files = [export_tflite(model, out_dir / f"{net}.tflite"), export_onnx(model, out_dir / f"{net}.onnx")]
        else:
            crops = representative[net]

            def gen(crops=crops) -> Callable:
                for x in crops:                  # the caller picks how many (export_detector: 1,000)
                    yield [np.asarray(x, np.float32)[None]]
            # the face score stays a float softmax: int8's 1/256 steps would tie every confident face
            tfl = export_tflite(model, out_dir / f"{net}.tflite", quant="int8", representative=gen,
                                float_ops=("SOFTMAX",))
            files = [tfl, export_onnx_from_tflite(tfl, out_dir / f"{net}.onnx")]
        for path in files:
            got = load_backend(path).run([probe])
            err = max(float(np.abs(a - b).max()) for a, b in zip(sorted(got, key=lambda a: a.shape[-1]),
                                                                 sorted(reference, key=lambda a: a.shape[-1])))
            if quant == "fp32" and err > tolerance:
                raise ModelError(f"{path.name} differs from the Keras {net} by {err:.2e} (> {tolerance})")
            card = ModelCard(
                name=f"{name}-{net}", task=f"mtcnn-{net}", file=path.name, sha256="",
                input=InputSpec(size=0 if net == "pnet" else NET_INPUT[net], normalisation=NET_NORMALISATION),
                outputs=OUTPUTS[net], format=path.suffix.lstrip("."), quantization=quant,
                thresholds={"face": float(face_thresholds[NETS.index(net)])} if face_thresholds else {},
                accuracy={"max_abs_diff_vs_keras": round(err, 6), **(extra or {})}, source=source,
                notes=notes or "Run by facegate.edge.detect.MTCNN; outputs are matched by last dimension.")
            written += [path, write_card(card, path)]
            log.info("%s (%s): max |diff| vs Keras %.2e", path.name, quant, err)
    images = agreement_images()
    for fmt in ("tflite", "onnx"):
        agreement = cascade_agreement(nets, out_dir, fmt, images)
        if quant == "fp32" and (agreement["same_face_count"] != agreement["images"] or (agreement["min_iou"] or 1) < 0.99):
            raise ModelError(f"the exported {fmt} cascade disagrees with Keras: {agreement}")
        if quant == "int8" and agreement["same_face_count"] < (1 - int8_max_count_mismatch) * agreement["images"]:
            raise ModelError(f"the int8 {fmt} cascade loses or invents faces on too many photos: {agreement}")
        for net in NETS:
            path = out_dir / f"{net}.{fmt}"
            card = load_card(path)
            card.accuracy["cascade_agreement_vs_keras"] = agreement
            write_card(card, path)
    return written
