"""Per-stage latency of the face pipeline on a door frame, and one-face latency per embedder file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.edge.bench.frames import door_frame
from facegate.edge.timing import median_ms, sample_seconds, spread_ms


def pipeline_settings() -> dict:
    """The door pipeline's detector settings every `bench pipeline` figure depends on."""
    from facegate.edge.door.config import DoorPipelineConfig
    c = DoorPipelineConfig().cascade_config()
    return {"min_face_size": c.min_face_size, "pyramid_factor": c.scale_factor, "chained_pyramid": c.chained_pyramid,
            "max_faces": c.max_faces, "fast_path_min_face": c.fast_path_min_face,
            "roi_from_previous": DoorPipelineConfig().roi_from_previous}


def bench_pipeline(photo: Path, embedders: list[str], formats: list[str], threads_list: list[int],
                   repeats: int, detector_threads: int | None = None, liveness: str | None = None) -> list[dict]:
    """Per-stage medians and the whole frame (detect, align, quality gates, [liveness,] embed:
    `Pipeline.embed`) with its spread, for each detector format x embedder x thread count, all in one
    run, with the door's pipeline settings (each frame is a new one: the ROI search around the last face
    does not apply). `liveness` names the liveness set of the liveness stage (None: no stage), run at
    each row's thread count.
    `threads_list` are the embedder's thread counts, as `threads` in the pipeline's configuration; the
    detector nets run at `detector_threads` (default: the configuration's), or at each of `threads_list`
    too when it is 0 (to measure what a second thread does for them)."""
    from facegate.edge.detect.face import pick_face
    from facegate.edge.door.config import DoorPipelineConfig
    from facegate.edge.errors import NoFaceError
    from facegate.edge.face.align import align_face
    from facegate.edge.face.pipeline import Pipeline
    from facegate.edge.face.quality import assess
    from facegate.edge.registry import get_embedder, load_detector, load_liveness

    frame = door_frame(photo)
    rows = []
    config = DoorPipelineConfig()     # what a door runs (one subject, large faces first)
    for threads in threads_list:
        det_threads = threads if detector_threads == 0 else (detector_threads or config.detector_threads or threads)
        checker = load_liveness(liveness, threads=threads) if liveness else None
        for fmt in formats:
            det = load_detector(fmt=fmt, threads=det_threads, config=config.cascade_config())
            faces = det.detect(frame)
            face = pick_face(faces, frame.shape)
            if face is None:
                raise NoFaceError(f"no face found in the benchmark frame made from {photo}")
            t_det = median_ms(lambda: det.detect(frame), repeats)
            for emb_path in embedders:
                emb = get_embedder(emb_path, threads=threads)
                crop = align_face(frame, face, emb.input_size, emb.spec.alignment)
                t_align = median_ms(lambda: assess(face, align_face(frame, face, 112, "similarity112")) and
                                     align_face(frame, face, emb.input_size, emb.spec.alignment), repeats)
                t_emb = median_ms(lambda: emb.embed(crop[None]), repeats)
                pipe = Pipeline(det, emb, config, checker)
                t_live = median_ms(lambda: pipe.check_liveness(frame, face), repeats) if checker else None
                whole = spread_ms(sample_seconds(lambda: pipe.embed(frame, check_liveness=checker is not None),
                                                 repeats))
                rows.append({"detector": det.name, "embedder": Path(emb_path).name, "backend": emb.backend.name,
                             "threads": threads, "detector_threads": det_threads, "detect_ms": t_det,
                             "align_quality_ms": t_align, "embed_ms": t_emb, "liveness": liveness,
                             "liveness_ms": t_live,
                             "frame_ms": whole["median_ms"], "frame_p10_ms": whole["p10_ms"],
                             "frame_p90_ms": whole["p90_ms"], "faces": len(faces)})
    return rows


def runnable(suffix: str, backends: list[str] | None) -> list[str | None]:
    """The backends of `backends` that run files of `suffix` (None: a file's default backend)."""
    from facegate.edge.backends import suffix_for_backend
    if not backends:
        return [None]
    return [None if b == "auto" else b for b in backends if b == "auto" or suffix_for_backend(b) == suffix.lower()]


def bench_embedders(embedders: list[str], threads_list: list[int | None], repeats: int,
                    backends: list[str] | None = None) -> list[dict]:
    """Latency of one face through each embedder file (edge runtime), per backend that runs it ("auto": its
    default; e.g. onnxruntime and onnxruntime-openvino for .onnx files) and thread count, one run."""
    from facegate.edge.registry import embedder_path, get_embedder

    rows = []
    for path in embedders:
        file = embedder_path(path) or Path(path)
        size_mb = round(file.stat().st_size / 1e6, 2) if file.is_file() else None
        for backend, threads in ((b, t) for b in runnable(file.suffix, backends) for t in threads_list):
            emb = get_embedder(path, threads=threads, backend=backend)
            crop = np.random.default_rng(0).integers(0, 255, (1, emb.input_size, emb.input_size, 3), dtype=np.uint8)
            rows.append({"embedder": Path(path).name, "backend": emb.backend.name, "threads": threads,
                         "size_mb": size_mb, "embed_ms": median_ms(lambda: emb.embed(crop), repeats)})
    return rows
