"""The timing table the embedder speed probes share: each file at 1 and 2 threads through the edge
runtime, in one run with the teacher fp32 TFLite, printed as speed-ups and written as JSON.
(Imported by benchmarks/embedder_relu_speed.py and embedder_prune_speed.py; run those.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegate.edge.backends import load_backend
from facegate.edge.downloads import cache_dir
from facegate.edge.timing import median_ms

TEACHER = cache_dir() / "exports" / "facenet-teacher" / "facenet-teacher_fp32.tflite"
SHIPPED_MIXED = Path("edge/models/facenet-student/facenet-student_int8_float-prelu.tflite")


def time_against_teacher(files: list[tuple[str, Path]], teacher: Path, size: int, repeats: int, out: Path) -> dict:
    """Median ms per face of the teacher, the shipped mixed int8 student and `files` (label, path)."""
    x = np.zeros((1, size, size, 3), np.float32)
    teacher_x = np.zeros((1, 160, 160, 3), np.float32)
    result = {}
    for name, file, inp in (("teacher fp32", teacher, teacher_x), ("shipped mixed (PReLU float)", SHIPPED_MIXED, x),
                            *((n, f, x) for n, f in files)):
        row = {"file": str(file), "size_mb": round(Path(file).stat().st_size / 1e6, 2)}
        for threads in (1, 2):
            backend = load_backend(file, threads=threads)
            row[f"ms_{threads}_thread"] = median_ms(lambda: backend.run([inp]), repeats)
        result[name] = row
    base = result["teacher fp32"]
    for name, row in result.items():
        print(f"{name}: {row['ms_1_thread']} / {row['ms_2_thread']} ms (1 / 2 threads) = "
              f"{base['ms_1_thread'] / row['ms_1_thread']:.1f}x / {base['ms_2_thread'] / row['ms_2_thread']:.1f}x")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
