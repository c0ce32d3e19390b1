"""WIDER FACE detection evaluation (official protocol) on the images that are present.

Ground-truth boxes come from the official `wider_face_val_bbx_gt.txt`; the easy / medium / hard
subsets from the official `wider_{easy,medium,hard}_val.mat` (which faces count in each subset;
the others are "ignored": matching them is neither a hit nor a false positive). Scores are
min-max normalised over all detections, 1000 thresholds, IoU 0.5, boxes with the +1 pixel
convention, VOC AP: the same arithmetic as the official/wondervictor evaluation code.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facegate.convert.evaluate.metrics import voc_ap
from facegate.convert.evaluate.report import plot_pr, write_outputs
from facegate.edge.detect import MTCNN
from facegate.edge.errors import DatasetError
from facegate.edge.images import load_rgb
from facegate.edge.timing import sample_seconds, spread_ms

log = logging.getLogger(__name__)
SETTINGS = ("easy", "medium", "hard")
THRESH_NUM = 1000


@dataclass
class GroundTruth:
    rel_path: str            # "<event>/<file>.jpg"
    boxes: np.ndarray        # (n, 4) x, y, w, h
    keep: dict[str, np.ndarray]  # setting -> 0-based indices of faces that count


def read_gt_txt(gt_file: Path) -> dict[str, np.ndarray]:
    """Parse the official bbx_gt text file: path, count, then count lines of x y w h + attributes."""
    if not gt_file.exists():
        raise DatasetError(f"WIDER ground truth not found: {gt_file}")
    lines = [ln.strip() for ln in gt_file.read_text().splitlines()]
    out: dict[str, np.ndarray] = {}
    i = 0
    try:
        while i < len(lines):
            if not lines[i]:
                i += 1
                continue
            name, count = lines[i], int(lines[i + 1])
            rows = [list(map(float, lines[i + 2 + k].split()[:4])) for k in range(count)]
            # the official file writes one dummy 0-box line for images with no face
            i += 2 + max(count, 1)
            out[name] = np.array(rows, np.float64).reshape(-1, 4)
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"{gt_file}: malformed near line {i + 1}") from exc
    return out


def read_settings(mat_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """setting -> {"event/file.jpg": 0-based indices of the faces that count}."""
    from scipy.io import loadmat

    result: dict[str, dict[str, np.ndarray]] = {}
    for setting in SETTINGS:
        path = mat_dir / f"wider_{setting}_val.mat"
        if not path.exists():
            raise DatasetError(f"WIDER setting file not found: {path}")
        mat = loadmat(str(path))
        table: dict[str, np.ndarray] = {}
        for i, event in enumerate(mat["event_list"]):
            event_name = str(event[0][0])
            files = mat["file_list"][i][0]
            keeps = mat["gt_list"][i][0]
            for j in range(len(files)):
                name = str(files[j][0][0])
                table[f"{event_name}/{name}.jpg"] = keeps[j][0].reshape(-1).astype(np.int64) - 1
        result[setting] = table
    return result


def load_ground_truth(images_dir: Path, gt_file: Path, mat_dir: Path) -> list[GroundTruth]:
    """Ground truth for the images present under images_dir (the dev subset has 404 of 3226)."""
    if not images_dir.is_dir():
        raise DatasetError(f"WIDER images folder not found: {images_dir}")
    boxes = read_gt_txt(gt_file)
    settings = read_settings(mat_dir)
    out = []
    for rel in sorted(boxes):
        if not (images_dir / rel).exists():
            continue
        keep = {s: settings[s].get(rel, np.zeros(0, np.int64)) for s in SETTINGS}
        out.append(GroundTruth(rel, boxes[rel], keep))
    if not out:
        raise DatasetError(f"none of the ground-truth images were found under {images_dir}")
    return out


def _overlaps(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU with the +1 pixel convention of the official code; boxes x1 y1 x2 y2."""
    iw = np.minimum(pred[:, None, 2], gt[None, :, 2]) - np.maximum(pred[:, None, 0], gt[None, :, 0]) + 1
    ih = np.minimum(pred[:, None, 3], gt[None, :, 3]) - np.maximum(pred[:, None, 1], gt[None, :, 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    return inter / (area_p[:, None] + area_g[None, :] - inter)


def image_pr(pred: np.ndarray, gt_xywh: np.ndarray, keep: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """(THRESH_NUM, 2): proposals counted and faces recalled at each score threshold for one image.

    `pred` rows are x, y, w, h, normalised score, sorted by score descending.
    """
    pr = np.zeros((THRESH_NUM, 2))
    if len(pred) == 0 or len(gt_xywh) == 0:
        return pr
    p = pred[:, :4].copy()
    p[:, 2:] += p[:, :2]
    g = gt_xywh.copy()
    g[:, 2:] += g[:, :2]
    counts = np.zeros(len(g), bool)
    counts[keep] = True
    ov = _overlaps(p, g)
    recall_state = np.zeros(len(g))
    proposal = np.ones(len(p))
    pred_recall = np.zeros(len(p))
    for h in range(len(p)):
        j = int(ov[h].argmax())
        if ov[h, j] >= iou:
            if not counts[j]:
                recall_state[j] = -1
                proposal[h] = -1
            elif recall_state[j] == 0:
                recall_state[j] = 1
        pred_recall[h] = np.count_nonzero(recall_state == 1)
    thresholds = 1 - (np.arange(THRESH_NUM) + 1) / THRESH_NUM
    n_above = np.searchsorted(-pred[:, 4], -thresholds, side="right")  # scores >= t (sorted desc)
    cum_prop = np.cumsum(proposal == 1)
    has = n_above > 0
    idx = np.maximum(n_above - 1, 0)
    pr[:, 0] = np.where(has, cum_prop[idx], 0)
    pr[:, 1] = np.where(has, pred_recall[idx], 0)
    return pr


def wider_ap(preds: dict[str, np.ndarray], gts: list[GroundTruth]) -> dict[str, dict]:
    """AP and PR curve per setting. preds: rel_path -> (n, 5) x y w h score (raw scores)."""
    nonempty = [v[:, 4] for v in preds.values() if len(v)]
    all_scores = np.concatenate(nonempty) if nonempty else np.zeros(0)
    lo, hi = (float(all_scores.min()), float(all_scores.max())) if len(all_scores) else (0.0, 1.0)
    span = (hi - lo) or 1.0
    normed = {}
    for k, v in preds.items():
        v = v.copy()
        v[:, 4] = (v[:, 4] - lo) / span
        normed[k] = v[np.argsort(-v[:, 4], kind="stable")]
    out = {}
    for setting in SETTINGS:
        curve = np.zeros((THRESH_NUM, 2))
        faces = 0
        for gt in gts:
            keep = gt.keep[setting]
            faces += len(keep)
            curve += image_pr(normed.get(gt.rel_path, np.zeros((0, 5))), gt.boxes, keep)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.nan_to_num(curve[:, 1] / curve[:, 0])
        recall = curve[:, 1] / max(faces, 1)
        out[setting] = {"ap": voc_ap(recall, precision), "faces": int(faces),
                        "recall": recall, "precision": precision}
    return out


def time_at_resolution(detector: MTCNN, images: list[np.ndarray], size: tuple[int, int] = (640, 480),
                       repeats: int = 1) -> dict:
    """Median and mean detection time per frame with frames resized to `size` (w, h)."""
    frames = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images]
    detector.detect(frames[0])  # warm-up (allocations, XNNPACK packing)
    times = [t for f in frames for t in sample_seconds(lambda: detector.detect(f), repeats, warmup=0)]
    spread = spread_ms(times)
    return {"resolution": f"{size[0]}x{size[1]}", "frames": len(times),
            "ms_median": spread["median_ms"], "ms_mean": spread["mean_ms"]}


def evaluate_wider(detector: MTCNN, images_dir: Path, gt_file: Path, mat_dir: Path, out_dir: Path,
                   command: str, max_images: int | None = None, progress: bool = True,
                   timing_frames: int = 20, holdout_every: int = 0, training_split: bool = False) -> dict:
    """AP per WIDER setting. `holdout_every` N: only the images `distill detector --hold-out-every N`
    never trained on (index % N == 0), or with `training_split` the others (to tune a student's
    settings without looking at the held-out images)."""
    gts = load_ground_truth(images_dir, gt_file, mat_dir)
    subset, tag = "all", ""
    if holdout_every:
        gts = [g for i, g in enumerate(gts) if (i % holdout_every == 0) != training_split]
        subset, tag = ((f"training (index % {holdout_every} != 0)", f"_train{holdout_every}") if training_split
                       else (f"held-out (index % {holdout_every} == 0)", f"_holdout{holdout_every}"))
    if max_images:
        gts = gts[:max_images]
    preds: dict[str, np.ndarray] = {}
    seconds = []
    timing_images = []
    for gt in tqdm(gts, desc=f"WIDER {detector.name}", unit="img", disable=not progress):
        image = load_rgb(images_dir / gt.rel_path)
        if len(timing_images) < timing_frames:
            timing_images.append(image)
        t0 = time.perf_counter()
        faces = detector.detect(image)
        seconds.append(time.perf_counter() - t0)
        preds[gt.rel_path] = np.array([[f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1], f.score]
                                       for f in faces], np.float64).reshape(-1, 5)
    aps = wider_ap(preds, gts)
    timing = time_at_resolution(detector, timing_images)
    result = {
        "task": "detection", "dataset": "WIDER FACE val (images present)", "detector": detector.name,
        "command": command, "images": len(gts), "min_face_size": detector.config.min_face_size,
        "subset": subset,
        "cascade": {"thresholds": list(detector.config.thresholds), "pyramid_factor": detector.config.scale_factor,
                    "chained_pyramid": detector.config.chained_pyramid, "nms": detector.config.nms_mode},
        **{f"ap_{s}": round(aps[s]["ap"], 4) for s in SETTINGS},
        **{f"faces_{s}": aps[s]["faces"] for s in SETTINGS},
        # where the PR curve ends: tells a recall-limited detector from an imprecise one
        **{f"recall_max_{s}": round(float(aps[s]["recall"].max()), 4) for s in SETTINGS},
        **{f"precision_at_max_recall_{s}": round(float(aps[s]["precision"][-1]), 4) for s in SETTINGS},
        "detections": int(sum(len(v) for v in preds.values())),
        "ms_per_image_native": round(1000 * float(np.mean(seconds)), 1),
        "timing_640x480": timing,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"wider_{detector.name.replace('.', '_')}{tag}"
    plot = plot_pr({s: (aps[s]["recall"], aps[s]["precision"], aps[s]["ap"]) for s in SETTINGS},
                   f"WIDER FACE ({len(gts)} val images) — {detector.name}", out_dir / f"{stem}_pr.png")
    result["plots"] = [plot.name]
    md = "\n".join([
        f"# WIDER FACE: {detector.name}", "", f"Command: `{command}`", "",
        "| subset | AP | faces | max recall | precision there |", "|---|---|---|---|---|",
        *[f"| {s} | {aps[s]['ap']:.4f} | {aps[s]['faces']} | {result[f'recall_max_{s}']:.3f} | "
          f"{result[f'precision_at_max_recall_{s}']:.3f} |" for s in SETTINGS], "",
        f"{len(gts)} images, min face {detector.config.min_face_size:g} px, "
        f"{result['ms_per_image_native']} ms per native-size image; "
        f"640x480: median {timing['ms_median']} ms over {timing['frames']} frames.", "",
        f"![PR]({plot.name})", ""])
    write_outputs(out_dir, stem, result, md)
    return result
