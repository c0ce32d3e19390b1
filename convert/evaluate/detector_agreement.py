"""How closely a detector reproduces a reference detector on portrait photos (LFW).

For each photo: does the detector find the subject face (detection rate), and where both detectors
find it, how far apart are the five landmarks, normalised by the reference's inter-ocular distance
(the alignment error an embedder would see), and how well do the boxes overlap. Photos are the LFW
pair images, face-centred, so the central face is the subject.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.convert.evaluate.faces import FaceFinder
from facegate.edge.detect import MTCNN
from facegate.edge.detect.boxes import pairwise_overlap
from facegate.edge.detect.face import pick_face
from facegate.edge.images import load_rgb


def landmark_error(face_lm: np.ndarray, ref_lm: np.ndarray) -> float:
    """Mean landmark distance / reference inter-ocular distance."""
    iod = float(np.linalg.norm(ref_lm[1] - ref_lm[0]))
    return float(np.mean(np.linalg.norm(face_lm - ref_lm, axis=1)) / max(iod, 1e-6))


def compare_detectors(paths: list[Path], detector: MTCNN, reference: MTCNN, out: Path, command: str = "",
                      progress: bool = True) -> dict:
    ref_finder = FaceFinder(reference)          # the reference's detections are cached (shared with eval lfw)
    found = ref_found = both = 0
    errors, ious = [], []
    seconds = 0.0
    for path in tqdm(paths, desc=f"detect {detector.name}", unit="img", disable=not progress):
        image = load_rgb(path)
        t0 = time.perf_counter()
        face = pick_face(detector.detect(image), image.shape, "central")
        seconds += time.perf_counter() - t0
        ref = pick_face(ref_finder.faces(path, image), image.shape, "central")
        found += face is not None
        ref_found += ref is not None
        if face is not None and ref is not None:
            both += 1
            errors.append(landmark_error(face.landmarks, ref.landmarks))
            ious.append(float(pairwise_overlap(face.box[None], ref.box[None])[0, 0]))
    ref_finder.save()
    err = np.array(errors)
    r = {"detector": detector.name, "reference": reference.name, "images": len(paths),
         "detection_rate": round(found / max(len(paths), 1), 5),
         "reference_detection_rate": round(ref_found / max(len(paths), 1), 5),
         "landmark_error_iod_mean": round(float(err.mean()), 5) if len(err) else None,
         "landmark_error_iod_median": round(float(np.median(err)), 5) if len(err) else None,
         "landmark_error_iod_p95": round(float(np.percentile(err, 95)), 5) if len(err) else None,
         "box_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
         "ms_per_image": round(1000 * seconds / max(len(paths), 1), 2), "command": command,
         "config": {"min_face_size": detector.config.min_face_size, "thresholds": list(detector.config.thresholds)}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lfw_detect_{detector.name}.json").write_text(json.dumps(r, indent=2) + "\n")
    _plot(err, out / f"lfw_detect_{detector.name}.png", detector.name, reference.name)
    return r


def _plot(err: np.ndarray, path: Path, name: str, ref: str) -> None:
    if not len(err):
        return
    from facegate.convert.evaluate.report import pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.clip(err, 0, 0.2) * 100, bins=80)
    ax.axvline(3.0, color="r", ls="--", label="3% target")
    ax.set_xlabel(f"landmark error vs {ref}, % of inter-ocular distance")
    ax.set_ylabel("LFW images")
    ax.set_title(name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
