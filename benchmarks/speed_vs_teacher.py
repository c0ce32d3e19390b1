"""The timing table the embedder speed probes share: each file at 1 and 2 threads through the edge
runtime, in one run with the teacher fp32 TFLite, printed as speed-ups and written as JSON.
(Imported by benchmarks/embedder_relu_speed.py and embedder_prune_speed.py.) Run on its own it times
every .tflite in a folder:

    python benchmarks/speed_vs_teacher.py FOLDER [--repeats 100]

The probes call it that way, in a fresh process, after exporting: TensorFlow's conversion leaves
thread pools behind in its process, and on a 2-core machine they slowed the 2-thread timings of
everything after them by up to 50% (the teacher's and the shipped file's included)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
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


def time_folder_in_fresh_process(folder: Path, repeats: int, teacher: Path = TEACHER) -> dict:
    """`time_against_teacher` on every .tflite in `folder`, run by a new Python process without
    TensorFlow loaded; returns the JSON it writes."""
    subprocess.run([sys.executable, str(Path(__file__)), str(folder), "--repeats", str(repeats),
                    "--teacher", str(teacher)], check=True)
    return json.loads((folder / "result.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description="time every .tflite in a folder against the teacher fp32 TFLite")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--teacher", type=Path, default=TEACHER)
    args = ap.parse_args()
    files = [(p.stem, p) for p in sorted(args.folder.glob("*.tflite"))]
    time_against_teacher(files, args.teacher, 112, args.repeats, args.folder)


if __name__ == "__main__":
    main()
