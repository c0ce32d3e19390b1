"""The MTCNN cascade per detector set, format and thread count in one run (speed ratios only mean
something within a run), split into the time inside each net and the cascade work every net set shares,
plus the door speed features. `facegate bench detector --plot` draws the split
(convert.evaluate.report.plot_detector_time).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facegate.edge.bench.frames import door_frame
from facegate.edge.timing import median_ms, sample_seconds


class _TimedNet:
    """A backend that adds the wall time of each call to a shared counter."""

    def __init__(self, backend, spent: list[float]) -> None:
        self.backend, self.spent = backend, spent

    def run(self, inputs):
        t0 = time.perf_counter()
        try:
            return self.backend.run(inputs)
        finally:
            self.spent[0] += time.perf_counter() - t0


def timed_detect(det, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per `det.detect(frame)` ("total") and, from the same calls, the time spent inside
    each net's backend calls ("pnet", "rnet", "onet") and all three together ("nets"); one warm-up
    call first, as `median_ms`.

    The rest of a frame (pyramid resizes, NMS, crops, Python) is cascade work shared by every net
    set, so it bounds how much faster any student can make the whole cascade."""
    from facegate.edge.detect import MTCNN

    names = ("pnet", "rnet", "onet")
    spent = {n: [0.0] for n in names}
    timed = MTCNN(*(_TimedNet(getattr(det, n), spent[n]) for n in names), config=det.config, name=det.name)
    per_frame: dict[str, list[float]] = {n: [] for n in (*names, "nets")}

    def one_frame() -> None:
        for n in names:
            spent[n][0] = 0.0
        timed.detect(frame)
        for n in names:
            per_frame[n].append(spent[n][0])
        per_frame["nets"].append(sum(spent[n][0] for n in names))

    per_frame["total"] = sample_seconds(one_frame, repeats)
    for n in (*names, "nets"):
        del per_frame[n][0]   # the warm-up call
    return {n: round(1000 * float(np.median(per_frame[n])), 2) for n in ("total", *names, "nets")}


def bench_detectors(photo: Path, detectors: list[str], formats: list[str], threads_list: list[int | None],
                    repeats: int, min_face: float = 40.0, backends: list[str] | None = None) -> list[dict]:
    """Full cascade on a 640x480 door frame for each detector set x format x thread count, in one
    run (speed ratios are only meaningful within a run), plus the door speed features on each."""
    from facegate.edge.bench.pipeline import runnable
    from facegate.edge.detect import CascadeConfig
    from facegate.edge.detect.face import pick_face
    from facegate.edge.registry import load_detector

    frame = door_frame(photo)
    rows = []
    for name in detectors:
        for fmt in formats:
            for backend, threads in ((b, t) for b in runnable(f".{fmt}", backends) for t in threads_list):
                det = load_detector(name, fmt=fmt, threads=threads, config=CascadeConfig(min_face_size=min_face),
                                    backend=backend)
                faces = det.detect(frame)
                face = pick_face(faces, frame.shape)
                row = {"detector": name, "format": fmt, "threads": threads, "faces": len(faces),
                       "backend": det.pnet.name}
                for mode, total_key, cascade in (("full", "full_ms", det),
                                                 ("chained", "chained_pyramid_ms", det.with_config(chained_pyramid=True))):
                    split = timed_detect(cascade, frame, repeats)
                    row[total_key] = split.pop("total")
                    row.update({f"{mode}_{k}_ms": v for k, v in split.items()})
                fast = det.with_config(fast_path_min_face=max(min_face, 120.0))
                row["fast_path_ms"] = median_ms(lambda: fast.detect(frame), repeats)
                if face is not None:
                    row["roi_ms"] = median_ms(lambda: det.detect(frame, roi=face), repeats)
                    one = det.with_config(max_faces=1)
                    row["max_faces1_ms"] = median_ms(lambda: one.detect(frame), repeats)
                rows.append(row)
    return rows
