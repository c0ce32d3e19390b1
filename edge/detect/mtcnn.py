"""The MTCNN cascade (P-Net -> R-Net -> O-Net) in numpy/OpenCV, over any inference backend.

The nets are plain model files run through :mod:`facegate.edge.backends`, so the same cascade runs
the teacher nets or the distilled MobileNet students, on LiteRT, ONNX Runtime or Keras. Outputs
are recognised by their last dimension (2: face/non-face softmax, 4: box regression, 10: landmarks),
so a converter that reorders outputs cannot silently swap them.

Defaults and arithmetic follow the reference `mtcnn` 1.0.0 package, whose detections this module
reproduces (tests/test_detect.py::test_parity_with_reference_mtcnn_package).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.backends import Backend, load_backend
from facegate.edge.detect.boxes import NMS_MODES, apply_regression, clip_to_image, crop_and_resize, nms, to_square
from facegate.edge.detect.face import Face
from facegate.edge.errors import ModelError
from facegate.edge.face.embed import normalise
from facegate.edge.images import as_rgb_uint8

log = logging.getLogger(__name__)


REFERENCE_THRESHOLDS = (0.6, 0.7, 0.8)
NET_NORMALISATION = "mean127.5_div128"   # every MTCNN net's input, teacher or student (their cards say so)


@dataclass(frozen=True)
class CascadeConfig:
    """Tunables of the cascade. Defaults are the reference package's."""

    min_face_size: float = 20.0
    scale_factor: float = 0.709
    # P/R/O-Net face-score thresholds; None: the nets' own (their cards' "face" threshold, set where a
    # student was tuned with them), else the reference package's REFERENCE_THRESHOLDS
    thresholds: tuple[float, float, float] | None = None
    nms_pnet_scale: float = 0.5
    nms_pnet_all: float = 0.7
    nms_rnet: float = 0.7
    nms_onet: float = 0.7  # 'min' overlap, as the reference
    nms_mode: str = "reference"  # 'reference' (the mtcnn package's rule) or 'greedy' (classic NMS)
    max_faces: int | None = None   # keep the best N faces; also caps the candidates O-Net looks at
    batch_size: int = 256  # R-Net/O-Net crops per backend call (bounds memory on boards)
    # door speed-ups (off by default, so detections equal the reference package's):
    roi_grow: float = 1.0          # ROI from a previous face: its box grown by this much per side
    roi_min_face_fraction: float = 0.5   # ...searched for faces >= this fraction of the previous face
    fast_path_min_face: float | None = None  # try this (large) min face first; full search if none found
    # each pyramid level resized from the previous one instead of from the full frame: the same
    # area filter on ever smaller images, ~5x less resizing (it was a third of a 640x480 cascade)
    chained_pyramid: bool = False

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError(f"min_face_size must be >= 12 px (P-Net's window), got {self.min_face_size}")
        if not 0.1 < self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0.1, 1), got {self.scale_factor}")
        if self.thresholds is not None and (len(self.thresholds) != 3
                                            or not all(0.0 <= t < 1.0 for t in self.thresholds)):
            raise ValueError(f"thresholds must be three scores in [0, 1), got {self.thresholds}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1 or unset, got {self.max_faces}")
        if self.fast_path_min_face is not None and self.fast_path_min_face < self.min_face_size:
            raise ValueError(f"fast_path_min_face ({self.fast_path_min_face}) must be >= min_face_size "
                             f"({self.min_face_size})")
        if self.roi_grow < 0 or not 0 < self.roi_min_face_fraction <= 1:
            raise ValueError("roi_grow must be >= 0 and roi_min_face_fraction in (0, 1]")
        if self.nms_mode not in NMS_MODES:
            raise ValueError(f"nms_mode must be one of {NMS_MODES}, got {self.nms_mode!r}")


def pyramid_scales(width: int, height: int, min_face_size: float, scale_factor: float,
                   min_size: int = 12) -> np.ndarray:
    """Image scales at which P-Net's 12 px window covers faces from min_face_size upwards.

    Same count formula as the reference package (so the same scales), which depends only on the
    image's short side.
    """
    min_dim = min(width, height)
    count = round(-((math.log(min_dim / min_size) / math.log(scale_factor)) + 1))
    m = min_size / min_face_size
    return m * scale_factor ** np.arange(max(0, count))


def split_outputs(outputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for out in outputs:
        key = {2: "prob", 4: "box", 10: "landmarks"}.get(out.shape[-1])
        if key is None or key in found:
            raise ModelError(f"unexpected MTCNN net output of shape {out.shape}")
        found[key] = out
    return found


class MTCNN:
    """Detect faces and 5 landmarks in an RGB image with three nets given as backends."""

    def __init__(self, pnet: Backend, rnet: Backend, onet: Backend, config: CascadeConfig | None = None,
                 name: str = "mtcnn", net_thresholds: tuple[float, float, float] | None = None) -> None:
        """`net_thresholds`: the nets' own score thresholds (from their cards), used when `config`
        leaves `thresholds` unset; an explicit `config.thresholds` always wins."""
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        config = config or CascadeConfig()
        if config.thresholds is None:
            config = replace(config, thresholds=tuple(net_thresholds or REFERENCE_THRESHOLDS))
        self.config = config
        self.name = name

    @classmethod
    def from_files(cls, folder: str | Path, suffix: str = ".tflite", backend: str | None = None,
                   threads: int | None = None, config: CascadeConfig | None = None) -> "MTCNN":
        """Load pnet/rnet/onet<suffix> from a folder without reading cards: no checksum check and the
        reference thresholds unless `config` sets some. For files being exported and checked (their
        cards are written afterwards); shipped sets load with `facegate.edge.registry.load_detector`."""
        folder = Path(folder)
        nets = [load_backend(folder / f"{n}{suffix}", backend=backend, threads=threads)
                for n in ("pnet", "rnet", "onet")]
        return cls(*nets, config=config, name=f"{folder.name}{suffix}")

    def with_config(self, **changes) -> "MTCNN":
        """A detector sharing these nets with some tunables changed."""
        return MTCNN(self.pnet, self.rnet, self.onet, replace(self.config, **changes), self.name)

    # -- stages -------------------------------------------------------------------------------
    def _stage_pnet(self, norm: np.ndarray) -> np.ndarray:
        cfg = self.config
        h, w = norm.shape[:2]
        candidates = []
        source = norm
        for scale in pyramid_scales(w, h, cfg.min_face_size, cfg.scale_factor):
            hs, ws = int(h * scale), int(w * scale)
            if min(hs, ws) < 12:
                continue
            scaled = cv2.resize(source, (ws, hs), interpolation=cv2.INTER_AREA)
            if cfg.chained_pyramid:
                source = scaled
            out = split_outputs(self.pnet.run([scaled[None]]))
            prob, reg = out["prob"][0, :, :, 1], out["box"][0]
            ys, xs = np.where(prob > cfg.thresholds[0])
            if len(ys) == 0:
                continue
            scores = prob[ys, xs]
            order = np.argsort(-scores, kind="stable")
            ys, xs, scores = ys[order], xs[order], scores[order]
            dx1, dy1, dx2, dy2 = reg[ys, xs].T
            x1, y1 = xs * 2 + 1, ys * 2 + 1
            x2, y2 = xs * 2 + 12, ys * 2 + 12
            boxes = np.stack([x1 + dx1 * 11, y1 + dy1 * 11, x2 + dx2 * 11, y2 + dy2 * 11], axis=1) / scale
            keep = nms(boxes, scores, cfg.nms_pnet_scale, presorted=True, mode=cfg.nms_mode)
            candidates.append(np.concatenate([boxes[keep], scores[keep, None]], axis=1))
        if not candidates:
            return np.zeros((0, 5))
        allc = np.concatenate(candidates, axis=0)
        keep = nms(allc[:, :4], allc[:, 4], cfg.nms_pnet_all, mode=cfg.nms_mode)
        allc = allc[keep]
        allc[:, :4] = to_square(allc[:, :4])
        return allc

    def _run_batched(self, net: Backend, patches: np.ndarray) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(patches), self.config.batch_size):
            for k, v in split_outputs(net.run([patches[start:start + self.config.batch_size]])).items():
                parts.setdefault(k, []).append(v)
        return {k: np.concatenate(v, axis=0) for k, v in parts.items()}

    def _stage_rnet(self, norm: np.ndarray, cand: np.ndarray) -> np.ndarray:
        if len(cand) == 0:
            return cand
        out = self._run_batched(self.rnet, crop_and_resize(norm, cand[:, :4], 24))
        scores = out["prob"][:, 1]
        boxes = apply_regression(cand[:, :4], out["box"])
        sel = scores > self.config.thresholds[1]
        boxes, scores = boxes[sel], scores[sel]
        keep = nms(boxes, scores, self.config.nms_rnet, mode=self.config.nms_mode)
        result = np.concatenate([to_square(boxes[keep]), scores[keep, None]], axis=1)
        if self.config.max_faces:   # O-Net only refines the most promising few
            result = result[np.argsort(-result[:, 4], kind="stable")[: max(4 * self.config.max_faces, 8)]]
        return result

    def _stage_onet(self, norm: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(cand) == 0:
            return np.zeros((0, 5)), np.zeros((0, 5, 2))
        out = self._run_batched(self.onet, crop_and_resize(norm, cand[:, :4], 48))
        boxes_in = cand[:, :4]
        w = boxes_in[:, 2:3] - boxes_in[:, 0:1] + 1
        h = boxes_in[:, 3:4] - boxes_in[:, 1:2] + 1
        lm = out["landmarks"]
        lx = w * lm[:, 0:5] + boxes_in[:, 0:1] - 1
        ly = h * lm[:, 5:10] + boxes_in[:, 1:2] - 1
        landmarks = np.stack([lx, ly], axis=2)
        scores = out["prob"][:, 1]
        boxes = apply_regression(boxes_in, out["box"])
        sel = scores > self.config.thresholds[2]
        boxes, scores, landmarks = boxes[sel], scores[sel], landmarks[sel]
        keep = nms(boxes, scores, self.config.nms_onet, method="min", mode=self.config.nms_mode)
        return np.concatenate([boxes[keep], scores[keep, None]], axis=1), landmarks[keep]

    # -- public -------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, roi: np.ndarray | Face | None = None) -> list[Face]:
        """All faces in an HxWx3 RGB uint8 image, best score first.

        `roi`: a face (or box x1, y1, x2, y2) from the previous frame. Only the region around it is
        searched, for faces of at least `roi_min_face_fraction` of its size — a few pyramid levels
        on a small crop instead of the whole frame. If nothing is found there, the whole frame is
        searched, so a person who moved is never lost.
        With `fast_path_min_face` set, large faces (a person standing at the door) are looked for
        first with that min face size (two or three cheap pyramid levels), and the full search runs
        only when none is found.
        """
        image = as_rgb_uint8(image)
        if roi is not None:
            faces = self._detect_roi(image, roi)
            if faces:
                return faces
        cfg = self.config
        if cfg.fast_path_min_face and cfg.fast_path_min_face > cfg.min_face_size:
            faces = self.with_config(min_face_size=cfg.fast_path_min_face, fast_path_min_face=None)._detect_full(image)
            if faces:
                return faces
        return self._detect_full(image)

    def _detect_roi(self, image: np.ndarray, roi: np.ndarray | Face) -> list[Face]:
        box = np.asarray(roi.box if isinstance(roi, Face) else roi, np.float64)
        h, w = image.shape[:2]
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw <= 0 or bh <= 0:
            return []
        g = self.config.roi_grow
        x1, y1 = int(max(0, box[0] - g * bw)), int(max(0, box[1] - g * bh))
        x2, y2 = int(min(w, box[2] + g * bw)), int(min(h, box[3] + g * bh))
        if x2 - x1 < 24 or y2 - y1 < 24:
            return []
        min_face = max(self.config.min_face_size, self.config.roi_min_face_fraction * min(bw, bh), 12.0)
        sub = self.with_config(min_face_size=min_face, fast_path_min_face=None)
        faces = sub._detect_full(np.ascontiguousarray(image[y1:y2, x1:x2]))
        off = np.array([x1, y1, x1, y1], np.float32)
        return [Face(box=f.box + off, score=f.score, landmarks=f.landmarks + off[:2]) for f in faces]

    def _detect_full(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        norm = normalise(image, NET_NORMALISATION)
        cand = self._stage_pnet(norm)
        cand = self._stage_rnet(norm, cand)
        final, landmarks = self._stage_onet(norm, cand)
        if len(final) == 0:
            return []
        boxes = clip_to_image(final[:, :4], w, h)
        faces = [Face(box=boxes[i].astype(np.float32), score=float(final[i, 4]),
                      landmarks=landmarks[i].astype(np.float32)) for i in range(len(final))]
        if self.config.max_faces:
            faces = faces[: self.config.max_faces]
        return faces
