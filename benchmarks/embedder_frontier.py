"""Issue 5: the embedder's speed/accuracy frontier as one picture (after embedder_student_slim.sh).

    python benchmarks/embedder_frontier.py [--out docs/img/embedder-speed-accuracy.png]

Reads the timings of `facegate bench embedder` (runs/students-slim/bench_embedder.json, in the order
the script passes the files: teacher, shipped student, 37.5% and 62.5% narrower students) and the
full-LFW results (the shipped file's card, `facegate eval lfw` JSONs for the narrower ones), and
plots LFW accuracy against the speed-up over the teacher with the issue's targets drawn in.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SHIPPED = Path("edge/models/facenet-student/facenet-student_int8_float-prelu.tflite.json")
RUNS = Path("runs/students-slim")
#: (label, where its full-LFW accuracy is) in the bench's order after the teacher
POINTS = [("shipped student, int8 (PReLU float)", SHIPPED),
          ("37.5% narrower, int8", RUNS / "u375/lfw/lfw_facenet-student-slim-int8.json"),
          ("62.5% narrower, int8", RUNS / "u625/lfw/lfw_facenet-student-slim-int8.json")]


def lfw_accuracy(path: Path) -> float:
    data = json.loads(path.read_text())
    return float(data["accuracy"]["lfw"]["accuracy_mean"] if "accuracy" in data else data["accuracy_mean"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=RUNS / "bench_embedder.json")
    ap.add_argument("--out", type=Path, default=Path("docs/img/embedder-speed-accuracy.png"))
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(args.bench.read_text())["embedders"]
    by_threads: dict[int, list[float]] = {}
    for row in rows:
        by_threads.setdefault(int(row["threads"]), []).append(float(row["embed_ms"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for threads, marker in ((1, "o"), (2, "s")):
        times = by_threads[threads]
        speedups = [times[0] / t for t in times[1:]]
        accs = [100 * lfw_accuracy(p) for _, p in POINTS]
        ax.plot(speedups, accs, marker=marker, linestyle="--", label=f"{threads} thread{'s' * (threads > 1)}")
        if threads == 1:
            for (label, _), x, y in zip(POINTS, speedups, accs):
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.axvline(20, color="grey", linewidth=1)
    ax.axhline(99.2, color="green", linewidth=1, label="target 99.2%")
    ax.axhline(98.5, color="red", linewidth=1, label="floor 98.5%")
    ax.set_xlabel("speed-up over the teacher fp32 TFLite (same run, LiteRT)")
    ax.set_ylabel("full LFW accuracy (%)")
    ax.set_title("Embedder students: accuracy vs speed (target: right of 20x, above 99.2%)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(args.out)


if __name__ == "__main__":
    main()
