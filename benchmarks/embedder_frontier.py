"""Issue 5: the embedder's speed/accuracy frontier as one picture (after embedder_student_slim.sh).

    python benchmarks/embedder_frontier.py [--out docs/img/embedder-speed-accuracy.png]

Reads the script's timing runs (runs/students-slim/timing/run*.json, written by
benchmarks/speed_vs_teacher.py: the teacher, the shipped mixed file and every narrower student, in one
run each) and the full-LFW results (the shipped file's card, `facegate eval lfw` JSONs for the narrower
ones), and plots LFW accuracy against the median speed-up over the teacher across the runs, with the
spread between runs as error bars and the issue's targets drawn in.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

SHIPPED = Path("edge/models/facenet-student/facenet-student_int8_float-prelu.tflite.json")
RUNS = Path("runs/students-slim")
#: timing key -> (label, where its full-LFW accuracy is, label offset in points)
POINTS = {"shipped mixed (PReLU float)": ("shipped student", SHIPPED, (5, 5)),
          "u375": ("37.5% narrower", RUNS / "u375/lfw/lfw_facenet-student-slim-int8.json", (5, 5)),
          "u625": ("62.5% narrower", RUNS / "u625/lfw/lfw_facenet-student-slim-int8.json", (-40, 8)),
          "staged": ("staged plan", RUNS / "staged/lfw/lfw_facenet-student-slim-int8.json", (-62, -13)),
          "progressive": ("progressive, 10 ep", RUNS / "progressive/lfw/lfw_facenet-student-slim-int8.json", (-45, 8)),
          "progressive-long": ("progressive, 24 ep", RUNS / "progressive-long/lfw/lfw_facenet-student-slim-int8.json",
                               (0, -14))}


def lfw_accuracy(path: Path) -> float:
    data = json.loads(path.read_text())
    return float(data["accuracy"]["lfw"]["accuracy_mean"] if "accuracy" in data else data["accuracy_mean"])


def speedups(runs: list[dict], key: str, threads: int) -> list[float]:
    return [run["teacher fp32"][f"ms_{threads}_thread"] / run[key][f"ms_{threads}_thread"] for run in runs if key in run]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timing", type=Path, default=RUNS / "timing")
    ap.add_argument("--out", type=Path, default=Path("docs/img/embedder-speed-accuracy.png"))
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(args.timing.glob("run*.json"))]
    if not runs:
        raise SystemExit(f"no timing runs in {args.timing}: run benchmarks/embedder_student_slim.sh first")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for threads, marker in ((1, "o"), (2, "s")):
        xs, ys, lo, hi, labels = [], [], [], [], []
        for key, (label, lfw, offset) in POINTS.items():
            s = speedups(runs, key, threads)
            if not s or not lfw.exists():
                continue
            mid = statistics.median(s)
            xs.append(mid), ys.append(100 * lfw_accuracy(lfw)), labels.append((label, offset))
            lo.append(mid - min(s)), hi.append(max(s) - mid)
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt=marker, capsize=3, label=f"{threads} thread{'s' * (threads > 1)}")
        if threads == 1:
            for (label, offset), x, y in zip(labels, xs, ys):
                ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
    ax.axvline(20, color="grey", linewidth=1)
    ax.axhline(99.2, color="green", linewidth=1, label="target 99.2%")
    ax.axhline(98.5, color="red", linewidth=1, label="floor 98.5%")
    ax.set_xlabel(f"speed-up over the teacher fp32 TFLite (LiteRT; median of {len(runs)} runs, bars: min-max)")
    ax.set_ylabel("full LFW accuracy, int8 (%)")
    ax.set_title("Embedder students: accuracy vs speed (target: right of 20x, above 99.2%)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
