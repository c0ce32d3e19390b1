"""Liveness (presentation attack detection): is a live person in front of the camera, or a printed
photo or a screen replaying one?

Each liveness net sees its own crop around the detected face box (MiniFASNetV2 2.7x the box,
MiniFASNetV1SE 4x: the second sees the frame of a phone or the edge of a photo), 80x80 BGR 0-255 as
trained. The crop is the nets' own recipe: the box is scaled about its centre, the scale reduced where
the image is too small, and the square shifted to stay inside the image (never padded: black borders
were never in their training data). The fused score is the mean of the nets' live probabilities;
the threshold comes from the set's card (chosen at a stated BPCER on pad_dev).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.backends import load_backend
from facegate.edge.cards import ModelCard, load_card
from facegate.edge.errors import ModelError
from facegate.edge.gallery.matching import Decision, MatchResult

log = logging.getLogger(__name__)


def pad_crop(rgb: np.ndarray, box: np.ndarray, scale: float, size: int, bgr: bool = True) -> np.ndarray:
    """The square crop of `scale` x the face box (x1, y1, x2, y2) about its centre, resized to size x size
    (float32 0-255, BGR by default)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = [float(v) for v in box[:4]]
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    cw, ch = bw * scale, bh * scale
    cx, cy = x1 + bw / 2, y1 + bh / 2
    left, top, right, bottom = cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2
    if left < 0:
        right, left = right - left, 0.0
    if top < 0:
        bottom, top = bottom - top, 0.0
    if right > w - 1:
        left, right = left - (right - w + 1), w - 1.0
    if bottom > h - 1:
        top, bottom = top - (bottom - h + 1), h - 1.0
    crop = rgb[int(top):int(bottom) + 1, int(left):int(right) + 1]
    out = cv2.resize(crop, (size, size))
    if bgr:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass
class LivenessResult:
    live: bool
    score: float                 # fused live probability
    threshold: float
    per_net: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """Why a face was refused, as the kiosk, the audit log and the CLI say it."""
        return f"presentation attack suspected (liveness {self.score:.3f} < {self.threshold:.3f})"

    def to_dict(self) -> dict:
        return {"live": self.live, "score": round(self.score, 4), "threshold": self.threshold,
                "per_net": {k: round(v, 4) for k, v in self.per_net.items()}}


def refused_as_attack(result: MatchResult, live: LivenessResult) -> MatchResult:
    """The identity result of a face the liveness check refused: a reject naming the suspected attack,
    with nobody's id (the attacker is not the member), the identity score kept for the record."""
    return MatchResult(Decision.REJECT, None, None, result.score, result.accept_threshold, result.retry_threshold,
                       [], [live.reason])


class LivenessNet:
    """One liveness model file and its card (crop scale, input size, which output is 'live')."""

    def __init__(self, path: str | Path, backend: str | None = None, threads: int | None = None) -> None:
        self.card: ModelCard = load_card(path)
        if self.card.task != "liveness":
            raise ModelError(f"{path} is a {self.card.task!r} model, not a liveness model")
        if not self.card.input.crop_scale:
            raise ModelError(f"the card of {path} gives no input crop_scale")
        self.backend = load_backend(path, backend=backend, threads=threads)
        self.live_index = int(self.card.outputs[0].get("live_index", 1)) if self.card.outputs else 1

    def live_probability(self, rgb: np.ndarray, box: np.ndarray) -> float:
        spec = self.card.input
        x = pad_crop(rgb, box, spec.crop_scale, spec.size, bgr=spec.color == "BGR")[None]
        return float(self.backend.run([x])[0][0][self.live_index])


class LivenessChecker:
    """The fused decision of a set of liveness nets."""

    def __init__(self, nets: list[LivenessNet], threshold: float) -> None:
        if not nets:
            raise ModelError("a liveness check needs at least one net")
        if not 0 < threshold < 1:
            raise ModelError(f"liveness threshold must be between 0 and 1, not {threshold}")
        self.nets = nets
        self.threshold = threshold

    @classmethod
    def from_folder(cls, folder: str | Path, fmt: str = "tflite", threshold: float | None = None,
                    backend: str | None = None, threads: int | None = None) -> "LivenessChecker":
        """Every `*.<fmt>` liveness model in a set folder; the threshold from the cards ("live")."""
        folder = Path(folder)
        files = sorted(p for p in folder.glob(f"*.{fmt}") if (p.parent / (p.name + ".json")).exists())
        if not files:
            raise ModelError(f"no {fmt} liveness models with cards in {folder}")
        nets = [LivenessNet(p, backend, threads) for p in files]
        if threshold is None:
            values = {n.card.thresholds.get("live") for n in nets}
            if len(values) != 1 or None in values:
                raise ModelError(f"the liveness cards in {folder} must share one 'live' threshold")
            threshold = float(values.pop())
        return cls(nets, threshold)

    def check(self, rgb: np.ndarray, box: np.ndarray) -> LivenessResult:
        per_net = {n.card.name: n.live_probability(rgb, box) for n in self.nets}
        score = float(np.mean(list(per_net.values())))
        return LivenessResult(score >= self.threshold, score, self.threshold, per_net)
