"""facegate's door frame against the open-source peer a buyer would try first: ageitgey/face_recognition
(dlib's HOG detector + ResNet embedder, its defaults), on the same synthetic door frames, interleaved
frame by frame in one process so both see the same machine load.

The frames are built from the shared datasets with a fixed seed: an LFW photo's face region pasted at
100-220 px onto a 640x480 crop of a WIDER FACE photo (which may hold faces of its own: both systems'
face counts are reported). face_recognition is never a facegate dependency: install it for this
benchmark only (docs/benchmarks.md, "Against face_recognition").
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.errors import DatasetError, ModelError, NoFaceError
from facegate.edge.images import list_images, load_rgb
from facegate.edge.timing import spread_ms

FRAME = (640, 480)
FACE_PX = (100, 220)


def peer_frames(lfw_images: Path, wider_images: Path, count: int = 40, seed: int = 0) -> list[dict]:
    """`count` door-like frames: {"frame": RGB uint8 640x480, "face_box": (x0, y0, x1, y1), "lfw": path,
    "background": path}. The same arguments give the same frames on every machine."""
    people, backgrounds = list_images(lfw_images), list_images(wider_images)   # sorted: reproducible
    if not people or not backgrounds:
        raise DatasetError(f"peer frames need LFW photos under {lfw_images} and WIDER photos under {wider_images}")
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        face_path = people[int(rng.integers(len(people)))]
        bg_path = backgrounds[int(rng.integers(len(backgrounds)))]
        bg = load_rgb(bg_path)
        scale = max(FRAME[0] / bg.shape[1], FRAME[1] / bg.shape[0])
        bg = cv2.resize(bg, (int(np.ceil(bg.shape[1] * scale)), int(np.ceil(bg.shape[0] * scale))),
                        interpolation=cv2.INTER_AREA)
        y, x = int(rng.integers(bg.shape[0] - FRAME[1] + 1)), int(rng.integers(bg.shape[1] - FRAME[0] + 1))
        frame = np.ascontiguousarray(bg[y:y + FRAME[1], x:x + FRAME[0]])
        photo = load_rgb(face_path)
        h, w = photo.shape[:2]          # LFW: 250x250, the face roughly central; take the central 60%
        crop = photo[int(0.2 * h):int(0.8 * h), int(0.2 * w):int(0.8 * w)]
        size = int(rng.integers(FACE_PX[0], FACE_PX[1] + 1))
        face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        fx = int(rng.integers(0, FRAME[0] - size + 1))
        fy = int(rng.integers(0, FRAME[1] - size + 1))
        frame[fy:fy + size, fx:fx + size] = face
        frames.append({"frame": frame, "face_box": (fx, fy, fx + size, fy + size), "lfw": str(face_path),
                       "background": str(bg_path)})
    return frames


def _face_recognition():
    try:
        import face_recognition
    except ImportError as exc:
        raise ModelError("the peer benchmark needs face_recognition, which facegate never depends on: "
                         "pip install -e '.[peers]' && pip install --no-deps face_recognition==1.3.0") from exc
    return face_recognition


def bench_peers(frames: list[dict], passes: int = 3, threads: int | None = 2) -> dict:
    """Per-frame time of facegate's pipeline (the door's defaults, and the full search photos get) and of
    face_recognition's defaults, interleaved frame by frame for `passes` passes; medians, p90 and faces
    found per system, and the ratios."""
    from facegate.edge.door.config import DoorPipelineConfig
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig

    fr = _face_recognition()
    door = DoorPipelineConfig(threads=threads)
    systems = {
        "facegate door defaults (large faces first)": Pipeline.from_config(door),
        "facegate door defaults + max_faces 1": Pipeline.from_config(replace(door, max_faces=1)),
        "facegate full search (photo defaults)": Pipeline.from_config(PipelineConfig(threads=threads)),
    }

    def run_facegate(pipe, frame):
        try:
            pipe.embed(frame, require_quality=False)
        except NoFaceError:
            pass

    calls = {name: (lambda f, p=pipe: run_facegate(p, f)) for name, pipe in systems.items()}
    peer = "face_recognition 1.3.0 (HOG + ResNet, defaults)"
    calls[peer] = fr.face_encodings
    detectors = {**{name: (lambda f, p=pipe: p.detector.detect(f)) for name, pipe in systems.items()},
                 peer: fr.face_locations}
    found = {name: [len(detectors[name](item["frame"])) for item in frames] for name in calls}
    for call in calls.values():       # warm-up: model loading, XNNPACK packing, dlib's first call
        call(frames[0]["frame"])
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(passes):
        for item in frames:
            for name, call in calls.items():
                t0 = time.perf_counter()
                call(item["frame"])
                times[name].append(time.perf_counter() - t0)
    rows = {}
    for name in calls:
        spread = spread_ms(times[name])
        rows[name] = {**spread, "frames_with_a_face": sum(n > 0 for n in found[name]),
                      "faces_found_mean": round(statistics.fmean(found[name]), 2)}
    for row in rows.values():
        row["peer_time_ratio"] = round(rows[peer]["median_ms"] / row["median_ms"], 1)
    return {"frames": len(frames), "passes": passes, "threads": threads, "frame_size": list(FRAME),
            "face_px": list(FACE_PX), "systems": rows}


def markdown(result: dict, command: str) -> str:
    """The result as the table docs/benchmarks.md shows."""
    lines = [f"`{command}`: {result['frames']} frames x {result['passes']} passes, interleaved; "
             f"facegate threads {result['threads']}", "",
             "| system | median | p10-p90 | frames with a face | faces per frame | face_recognition time / this |",
             "|---|---|---|---|---|---|"]
    for name, r in result["systems"].items():
        lines.append(f"| {name} | {r['median_ms']} ms | {r['p10_ms']}-{r['p90_ms']} ms | "
                     f"{r['frames_with_a_face']}/{result['frames']} | {r['faces_found_mean']} | {r['peer_time_ratio']}x |")
    return "\n".join(lines) + "\n"
