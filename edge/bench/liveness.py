"""Liveness check latency per committed set and thread count: both nets' crops and inference for one
face on a 640x480 door frame (the detector's time is not included: the door has the box already)."""
from __future__ import annotations

from pathlib import Path

from facegate.edge.bench.frames import door_frame
from facegate.edge.detect.face import pick_face
from facegate.edge.timing import median_ms


def bench_liveness(photo: Path, sets: list[str], threads: list[int], repeats: int = 30) -> list[dict]:
    from facegate.edge.registry import liveness_dir, load_detector, load_liveness
    frame = door_frame(photo)
    face = pick_face(load_detector().detect(frame), frame.shape)
    rows = []
    for name in sets:
        size_kb = sum(p.stat().st_size for p in liveness_dir(name).glob("minifasnet-*.*") if not p.name.endswith(".json"))
        for n in threads:
            checker = load_liveness(name, threads=n)
            result = checker.check(frame, face.box)
            rows.append({"set": name, "threads": n, "size_kb": round(size_kb / 1024), "check_ms":
                         median_ms(lambda c=checker: c.check(frame, face.box), repeats),
                         "score": round(result.score, 4), "live": result.live})
    return rows
