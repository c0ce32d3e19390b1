"""Export the MTCNN teacher nets to TFLite and ONNX with cards (the files committed under
edge/models/mtcnn-teacher), and check each file against the Keras net it came from."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.convert.export.onnx import export_onnx
from facegate.convert.export.tflite import export_tflite
from facegate.convert.keras_backend import KerasBackend
from facegate.convert.teachers.mtcnn import NET_INPUT, build_teacher
from facegate.edge.backends import load_backend
from facegate.edge.cards import InputSpec, ModelCard, load_card, write_card
from facegate.edge.downloads import MTCNN_WHEEL
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

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
    ref = MTCNN(*(KerasBackend(keras_nets[n]) for n in ("pnet", "rnet", "onet")))
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
            "max_score_diff": round(float(max(dscore)), 6) if dscore else None}


def _agreement_images() -> list[np.ndarray]:
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.images import list_images, load_rgb
    return [load_rgb(p) for p in list_images(celebrity5_dir() / "val")[::3]]


def export_mtcnn_teacher(out_dir: str | Path, tolerance: float = 1e-4) -> list[Path]:
    """Write pnet/rnet/onet as .tflite and .onnx plus cards; fail if any output drifts from Keras."""
    out_dir = Path(out_dir)
    written = []
    rng = np.random.default_rng(0)
    nets = build_teacher()
    for net, model in nets.items():
        size = NET_INPUT[net]
        probe = rng.normal(size=(4, 37, 53, 3) if net == "pnet" else (4, size, size, 3)).astype(np.float32)
        reference = KerasBackend(model).run([probe])
        for fmt, exporter in (("tflite", export_tflite), ("onnx", export_onnx)):
            path = exporter(model, out_dir / f"{net}.{fmt}")
            got = load_backend(path).run([probe])
            err = max(float(np.abs(a - b).max()) for a, b in zip(got, reference))
            if err > tolerance:
                raise ModelError(f"{path.name} differs from the Keras {net} by {err:.2e} (> {tolerance})")
            card = ModelCard(
                name=f"mtcnn-teacher-{net}", task=f"mtcnn-{net}", file=path.name, sha256="",
                input=InputSpec(size=0 if net == "pnet" else size, normalisation="mean127.5_div128"),
                outputs=OUTPUTS[net], format=fmt, quantization="fp32",
                accuracy={"max_abs_diff_vs_keras": err},
                source=f"weights from the {MTCNN_WHEEL.requirement} wheel (MIT), sha256 {MTCNN_WHEEL.sha256}",
                notes="Run by facegate.edge.detect.MTCNN; outputs are matched by last dimension.")
            written += [path, write_card(card, path)]
            log.info("%s: max |diff| vs Keras %.2e", path.name, err)
    images = _agreement_images()
    for fmt in ("tflite", "onnx"):
        agreement = cascade_agreement(nets, out_dir, fmt, images)
        if agreement["same_face_count"] != agreement["images"] or (agreement["min_iou"] or 1) < 0.99:
            raise ModelError(f"the exported {fmt} cascade disagrees with Keras: {agreement}")
        for net in ("pnet", "rnet", "onet"):
            path = out_dir / f"{net}.{fmt}"
            card = load_card(path)
            card.accuracy["cascade_agreement_vs_keras"] = agreement
            write_card(card, path)
    return written
