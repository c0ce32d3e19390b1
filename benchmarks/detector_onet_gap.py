"""How far a student O-Net is from the teacher on its training crops vs on crops it never saw.

    python benchmarks/detector_onet_gap.py runs/distill/detector-v4 runs/distill/detector-v8

Held-out crops: the teacher cascade's P+R candidates on the WIDER images `distill detector` holds
out (index % 4 == 0), labelled by the teacher O-Net. Training crops: 4,000 drawn from the first
run's `data/onet.npz`. Per set: agreement on the 0.7 face threshold, rank correlation of the face
log-odds among the teacher's faces (the order AP depends on), and RMS error of the box regression
and landmarks on those faces. A large train/held-out gap means the O-Net memorised its crops.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def held_out_crops() -> dict[str, np.ndarray]:
    from facegate.convert.datasets import wider_dir
    from facegate.convert.distill import detector_data as dd
    from facegate.edge.detect.boxes import crop_and_resize
    from facegate.edge.detect.mtcnn import CascadeConfig
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import load_detector

    teacher = load_detector("mtcnn-teacher", fmt="tflite", config=CascadeConfig(min_face_size=20.0))
    crops = []
    for item in dd.wider_images(wider_dir(), lambda i: i % 4 == 0):
        norm = dd.normalised(load_rgb(item.path))
        cand = teacher._stage_rnet(norm, teacher._stage_pnet(norm))
        if len(cand):
            crops.append(crop_and_resize(norm, cand[:, :4], 48))
    x = np.concatenate(crops)
    prob, box, marks = dd.relabel(teacher.onet, x, ["prob", "box", "landmarks"])
    return {"x": x, "prob": prob, "box": box, "landmarks": marks}


def gap_row(model, data: dict[str, np.ndarray]) -> dict[str, float]:
    from scipy.stats import spearmanr

    outs = model.predict(data["x"].astype(np.float32), verbose=0, batch_size=512)
    by_width = {o.shape[-1]: o for o in outs}
    p, box, marks = by_width[2], by_width[4], by_width[10]
    t = data["prob"][:, 0]
    faces = t > 0.7
    s_logit = np.log(p[:, 1] + 1e-12) - np.log(p[:, 0] + 1e-12)
    t_logit = np.log(t + 1e-12) - np.log(np.maximum(1 - t, 0) + 1e-12)
    return {"crops": len(t), "teacher_faces": float(faces.mean()),
            "agree_at_0.7": float(np.mean((p[:, 1] > 0.7) == faces)),
            "logit_spearman": float(spearmanr(s_logit[faces], t_logit[faces]).correlation),
            "box_rms": float(np.sqrt(np.mean((box - data["box"])[faces] ** 2))),
            "landmark_rms": float(np.sqrt(np.mean((marks - data["landmarks"])[faces] ** 2)))}


def main(runs: list[Path]) -> None:
    import keras

    held = held_out_crops()
    with np.load(runs[0] / "data" / "onet.npz") as z:
        idx = np.sort(np.random.default_rng(0).choice(len(z["x"]), 4000, replace=False))
        train = {k: z[k][idx] for k in z.files}
    for run in runs:
        model = keras.saving.load_model(run / "onet.keras", compile=False)
        for name, data in (("training", train), ("held-out", held)):
            r = gap_row(model, data)
            print(f"{run} {name:9s} crops {r['crops']:5d} faces {r['teacher_faces']:.2f} "
                  f"agree@0.7 {r['agree_at_0.7']:.3f} log-odds spearman {r['logit_spearman']:.3f} "
                  f"box rms {r['box_rms']:.4f} landmark rms {r['landmark_rms']:.4f}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
