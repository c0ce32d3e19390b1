"""The face pipeline: detect -> align -> quality gates -> [liveness] -> embed -> L2-normalise.

A short public API in the spirit of face_recognition's api.py::

    from facegate.edge import Pipeline
    pipe = Pipeline.from_config("door.toml")      # or Pipeline.from_config() for the defaults
    results = pipe.faces(image)                    # every face with its quality report
    probe = pipe.embed(image)                      # the subject's embedding, or NoFaceError(reasons)
    pipe = Pipeline.from_config(liveness=load_liveness())
    probe = pipe.embed(image, check_liveness=True) # ... and probe.liveness: live person or photo/screen?

The liveness stage is optional and held by the pipeline (the door, verify/identify and enrolment all
use the same one); its settings are the door's `[liveness]` section, not `[pipeline]`.

Configuration is data (TOML or a dict), never code.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facegate.edge.config import load_section, read_toml, within
from facegate.edge.detect import MTCNN, CascadeConfig, Face
from facegate.edge.detect.face import pick_face
from facegate.edge.errors import NoFaceError
from facegate.edge.face.align import align_face
from facegate.edge.face.embed import Embedder
from facegate.edge.face.liveness import LivenessChecker, LivenessResult
from facegate.edge.face.quality import QualityConfig, QualityReport, assess
from facegate.edge.images import as_rgb_uint8
from facegate.edge.registry import DEFAULT_DETECTOR, get_embedder, load_detector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    detector: str = DEFAULT_DETECTOR
    detector_format: str | None = None        # 'tflite' | 'onnx' | None (best installed)
    embedder: str | None = None               # model file with card; None: the default embedder
    backend: str | None = None                # force a backend for the embedder
    detector_backend: str | None = None       # force a backend for the detector nets (e.g. tflite-runtime)
    threads: int | None = within(None, 1, 64)                # the embedder's inference threads (None: the runtime's choice)
    detector_threads: int | None = within(None, 1, 64)       # the MTCNN nets' threads; None: as `threads` (a full search gains
                                              # ~20% from a second thread; the door's fast path does not: 1 there)
    min_face_size: float = within(40.0, 12, 4000)               # door use: people stand close; 40 px is ~3x faster than 20
    pyramid_factor: float = within(0.709, 0.3, 0.95)             # image pyramid step (larger: more levels, slower, finds more)
    chained_pyramid: bool = True              # each level resized from the previous: ~4 ms less per 640x480
                                              # frame, WIDER AP unchanged (docs/benchmarks.md)
    max_faces: int | None = within(None, 1, 1000)              # keep only the best N faces (and refine fewer candidates)
    fast_path_min_face: float | None = within(None, 12, 4000)   # look for faces this large first (cheap); full search if none
    roi_from_previous: bool = False           # door: search around the last subject's face first
    face_policy: str = "central"              # 'central' | 'largest' when several faces are seen
    quality: QualityConfig = field(default_factory=QualityConfig)

    def cascade_config(self) -> CascadeConfig:
        """The detector settings this pipeline runs the cascade with (also what `bench pipeline` times)."""
        return CascadeConfig(min_face_size=self.min_face_size, scale_factor=self.pyramid_factor,
                             max_faces=self.max_faces, fast_path_min_face=self.fast_path_min_face,
                             chained_pyramid=self.chained_pyramid)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        """A checked config from a `[pipeline]` table (ConfigError naming any unknown or mistyped key)."""
        return load_section(cls, data, "pipeline")

    @classmethod
    def from_toml(cls, path: str | Path, section: str = "pipeline") -> "PipelineConfig":
        return cls.from_dict(read_toml(path).get(section, {}))


@dataclass
class FaceResult:
    face: Face
    crop: np.ndarray
    quality: QualityReport


@dataclass
class Embedding:
    vector: np.ndarray
    face: Face
    quality: QualityReport
    timings_ms: dict[str, float]
    liveness: LivenessResult | None = None      # set when the embed call asked for the liveness stage


class Pipeline:
    """Detector + embedder + quality gates (+ an optional liveness stage), configured once, used per frame."""

    def __init__(self, detector: MTCNN, embedder: Embedder, config: PipelineConfig = PipelineConfig(),
                 liveness: LivenessChecker | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.config = config
        self.liveness = liveness

    @classmethod
    def from_config(cls, config: PipelineConfig | str | Path | dict | None = None, *,
                    liveness: LivenessChecker | None = None, **overrides) -> "Pipeline":
        if config is None:
            config = PipelineConfig()
        elif isinstance(config, (str, Path)):
            config = PipelineConfig.from_toml(config)
        elif isinstance(config, dict):
            config = PipelineConfig.from_dict(config)
        if overrides:
            config = replace(config, **overrides)
        detector_threads = config.threads if config.detector_threads is None else config.detector_threads
        detector = load_detector(config.detector, fmt=config.detector_format, threads=detector_threads,
                                 config=config.cascade_config(), backend=config.detector_backend)
        embedder = get_embedder(config.embedder, threads=config.threads, backend=config.backend)
        return cls(detector, embedder, config, liveness)

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The face aligned the way the embedder's card asks (what enrolment stores as a crop)."""
        return align_face(image, face, self.embedder.input_size, self.embedder.spec.alignment)

    def faces_quality(self, image: np.ndarray, face: Face, crop: np.ndarray | None = None) -> QualityReport:
        """Quality report of one face (on the 112x112 similarity crop the gates are tuned for)."""
        if crop is None or crop.shape[0] != 112:
            crop = align_face(image, face, 112, "similarity112")
        return assess(face, crop, self.config.quality)

    def faces(self, image: np.ndarray) -> list[FaceResult]:
        """Every detected face with its aligned crop and quality report, best score first."""
        image = as_rgb_uint8(image)
        out = []
        for face in self.detector.detect(image):
            crop = self.crop(image, face)
            out.append(FaceResult(face, crop, self.faces_quality(image, face, crop)))
        return out

    def check_liveness(self, image: np.ndarray, face: Face) -> LivenessResult:
        """The liveness stage on one detected face (its nets crop the frame around the box)."""
        if self.liveness is None:
            raise ValueError("this pipeline has no liveness stage (Pipeline(..., liveness=load_liveness()))")
        return self.liveness.check(image, face.box)

    def embed(self, image: np.ndarray, require_quality: bool = True, check_liveness: bool = False) -> Embedding:
        """The subject face's embedding. Raises NoFaceError (with the reasons) if there is no
        face, or the subject fails a quality gate and `require_quality` is set. With `check_liveness`
        the liveness stage runs too (the result says live or not; deciding is the caller's)."""
        image = as_rgb_uint8(image)
        t0 = time.perf_counter()
        faces = self.detector.detect(image)
        t1 = time.perf_counter()
        face = pick_face(faces, image.shape, self.config.face_policy)
        if face is None:
            raise NoFaceError("no face found in the image")
        crop = self.crop(image, face)
        report = self.faces_quality(image, face, crop)
        t2 = time.perf_counter()
        if require_quality and not report.ok:
            raise NoFaceError("face rejected: " + "; ".join(report.reasons))
        live = self.check_liveness(image, face) if check_liveness else None
        t3 = time.perf_counter()
        vector = self.embedder.embed(crop[None])[0]
        t4 = time.perf_counter()
        timings = {"detect": 1000 * (t1 - t0), "align_quality": 1000 * (t2 - t1), "embed": 1000 * (t4 - t3)}
        if check_liveness:
            timings["liveness"] = 1000 * (t3 - t2)
        return Embedding(vector, face, report, {k: round(v, 2) for k, v in timings.items()}, live)

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        image = as_rgb_uint8(image)
        return self.embedder.embed(np.stack([self.crop(image, f) for f in faces]))
