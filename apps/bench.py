"""`facegate bench ...`: the speed numbers behind docs/benchmarks.md (never timed unit tests).

* `bench pipeline`: per-stage latency on a 640x480 frame with one face, for each detector format
  and embedder file given.
* `bench detector`: the cascade per detector set, format and thread count in one run, with the time
  spent inside the nets (the rest is cascade work every net set shares) and the door speed features.
* `bench gallery`: 1:N identify latency for 1k/10k/100k templates, open (decrypt + load) time for
  10k people, enrol throughput (one atomic, fsync'ed write per enrolment).
"""
from __future__ import annotations

import argparse
import json
import logging
import secrets
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.images import load_rgb
from facegate.edge.timing import median_ms

log = logging.getLogger(__name__)


def door_frame(photo: Path, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A 640x480 frame with one face: the photo scaled to 60% of the frame height on a grey wall."""
    img = load_rgb(photo)
    w, h = size
    scale = 0.6 * h / img.shape[0]
    small = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 128, np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return frame


def bench_pipeline(photo: Path, embedders: list[str], formats: list[str], threads: int | None, repeats: int) -> list[dict]:
    from facegate.edge.align import align_face
    from facegate.edge.detect.face import pick_face
    from facegate.edge.pipeline import PipelineConfig
    from facegate.edge.quality import assess
    from facegate.edge.registry import load_detector, load_embedder

    frame = door_frame(photo)
    rows = []
    cascade = PipelineConfig().cascade_config()   # the door pipeline's own detector settings
    for fmt in formats:
        det = load_detector(fmt=fmt, threads=threads, config=cascade)
        faces = det.detect(frame)
        face = pick_face(faces, frame.shape)
        if face is None:
            raise RuntimeError(f"no face found in the benchmark frame from {photo}")
        t_det = median_ms(lambda: det.detect(frame), repeats)
        for emb_path in embedders:
            emb = load_embedder(emb_path, threads=threads)
            crop = align_face(frame, face, emb.input_size, emb.spec.alignment)
            t_align = median_ms(lambda: assess(face, align_face(frame, face, 112, "similarity112")) and
                                 align_face(frame, face, emb.input_size, emb.spec.alignment), repeats)
            t_emb = median_ms(lambda: emb.embed(crop[None]), repeats)
            rows.append({"detector": det.name, "embedder": Path(emb_path).name, "backend": emb.backend.name,
                         "threads": threads, "detect_ms": t_det, "align_quality_ms": t_align, "embed_ms": t_emb,
                         "total_ms": round(t_det + t_align + t_emb, 2), "faces": len(faces)})
    return rows


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


def nets_ms(det, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median time per frame spent inside each net's backend calls during `det.detect(frame)`, and in
    all three together ("nets").

    The rest of a frame (pyramid resizes, NMS, crops, Python) is cascade work shared by every net
    set, so it bounds how much faster any student can make the whole cascade."""
    from facegate.edge.detect import MTCNN

    names = ("pnet", "rnet", "onet")
    spent = {n: [0.0] for n in names}
    timed = MTCNN(*(_TimedNet(getattr(det, n), spent[n]) for n in names), config=det.config, name=det.name)
    timed.detect(frame)
    per_frame: dict[str, list[float]] = {n: [] for n in (*names, "nets")}
    for _ in range(repeats):
        for n in names:
            spent[n][0] = 0.0
        timed.detect(frame)
        for n in names:
            per_frame[n].append(spent[n][0])
        per_frame["nets"].append(sum(spent[n][0] for n in names))
    return {n: round(1000 * float(np.median(v)), 2) for n, v in per_frame.items()}


def bench_detectors(photo: Path, detectors: list[str], formats: list[str], threads_list: list[int | None],
                    repeats: int, min_face: float = 40.0) -> list[dict]:
    """Full cascade on a 640x480 door frame for each detector set x format x thread count, in one
    run (speed ratios are only meaningful within a run), plus the door speed features on each."""
    from facegate.edge.detect import CascadeConfig
    from facegate.edge.detect.face import pick_face
    from facegate.edge.registry import load_detector

    frame = door_frame(photo)
    rows = []
    for name in detectors:
        for fmt in formats:
            for threads in threads_list:
                det = load_detector(name, fmt=fmt, threads=threads, config=CascadeConfig(min_face_size=min_face))
                faces = det.detect(frame)
                face = pick_face(faces, frame.shape)
                row = {"detector": name, "format": fmt, "threads": threads, "faces": len(faces),
                       "full_ms": median_ms(lambda: det.detect(frame), repeats)}
                for k, v in nets_ms(det, frame, repeats).items():
                    row[f"full_{k}_ms"] = v
                chained = det.with_config(chained_pyramid=True)
                row["chained_pyramid_ms"] = median_ms(lambda: chained.detect(frame), repeats)
                for k, v in nets_ms(chained, frame, repeats).items():
                    row[f"chained_{k}_ms"] = v
                fast = det.with_config(fast_path_min_face=max(min_face, 120.0))
                row["fast_path_ms"] = median_ms(lambda: fast.detect(frame), repeats)
                if face is not None:
                    row["roi_ms"] = median_ms(lambda: det.detect(frame, roi=face), repeats)
                    one = det.with_config(max_faces=1)
                    row["max_faces1_ms"] = median_ms(lambda: one.detect(frame), repeats)
                rows.append(row)
    return rows


def plot_detector_time(rows: list[dict], path: Path, mode: str = "chained") -> Path | None:
    """Stacked bars per detector set / format / threads: time in P-Net, R-Net, O-Net and the shared
    cascade work, for the full-frame (`mode="full"`) or chained pyramid. Shows at a glance how much
    of a frame any student can win. None (with a warning) where matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib missing (pip install 'facegate[convert]'): no plot written")
        return None
    total_key = "chained_pyramid_ms" if mode == "chained" else "full_ms"
    labels = [f"{r['detector']} {r['format']} {r['threads'] or 'default'}t" for r in rows]
    parts = {"P-Net": [r[f"{mode}_pnet_ms"] for r in rows], "R-Net": [r[f"{mode}_rnet_ms"] for r in rows],
             "O-Net": [r[f"{mode}_onet_ms"] for r in rows],
             "shared cascade work": [max(0.0, r[total_key] - r[f"{mode}_nets_ms"]) for r in rows]}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    left = np.zeros(len(rows))
    for (name, values), colour in zip(parts.items(), ("#4c72b0", "#55a868", "#c44e52", "#999999")):
        ax.barh(labels, values, left=left, label=name, color=colour)
        left += np.asarray(values)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms per 640x480 frame ({'chained' if mode == 'chained' else 'full-frame'} pyramid, median)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.5 / len(rows)), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bench_embedders(embedders: list[str], threads_list: list[int | None], repeats: int) -> list[dict]:
    """Latency of one face through each embedder file (edge runtime), per thread count, one run."""
    from facegate.edge.registry import load_embedder

    rows = []
    for path in embedders:
        for threads in threads_list:
            emb = load_embedder(path, threads=threads)
            crop = np.random.default_rng(0).integers(0, 255, (1, emb.input_size, emb.input_size, 3), dtype=np.uint8)
            rows.append({"embedder": Path(path).name, "backend": emb.backend.name, "threads": threads,
                         "size_mb": round(Path(path).stat().st_size / 1e6, 2) if Path(path).is_file() else None,
                         "embed_ms": median_ms(lambda: emb.embed(crop), repeats)})
    return rows


def bench_gallery(dim: int = 128, sizes=(1_000, 10_000, 100_000), repeats: int = 50) -> dict:
    from facegate.edge.gallery import GalleryStore, KeySource, Matcher, ModelBinding
    from facegate.edge.gallery.records import Gallery, Person

    rng = np.random.default_rng(0)
    binding = ModelBinding("bench", "00" * 32, dim)
    out: dict = {"identify_ms": {}}
    for n in sizes:
        g = Gallery(binding)
        people = n // 2  # two templates per person
        g.person_order = [f"{i:012x}" for i in range(people)]
        g.people = {pid: Person(pid, f"person {pid}") for pid in g.person_order}
        v = rng.normal(size=(n, dim)).astype(np.float32)
        g.templates = v / np.linalg.norm(v, axis=1, keepdims=True)
        g.owners = np.repeat(np.arange(people), 2)
        m = Matcher(g, 0.5)
        probe = g.templates[n // 3]
        out["identify_ms"][str(n)] = median_ms(lambda: m.identify(probe, top_k=5), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        key = KeySource("raw", secrets.token_bytes(32))
        store = GalleryStore(Path(tmp) / "g.fgg", key)
        g = store.create(binding)
        with store.transaction() as g:
            for i in range(10_000):
                p = g.add_person(f"person {i}")
                g.add_templates(p.id, rng.normal(size=(2, dim)))
        out["file_mb_10k_people"] = round(store.path.stat().st_size / 1e6, 2)
        out["open_ms_10k_people"] = median_ms(lambda: GalleryStore(store.path, key).load(), 5)
        small = GalleryStore(Path(tmp) / "small.fgg", key)
        small.create(binding)
        with small.transaction() as g:
            for i in range(1000):
                g.add_templates(g.add_person(f"p{i}").id, rng.normal(size=(2, dim)))
        t0 = time.perf_counter()
        count = 20
        for i in range(count):
            with small.transaction() as g:
                g.add_templates(g.add_person(f"new {i}").id, rng.normal(size=(3, dim)))
        out["enroll_per_s_1k_people"] = round(count / (time.perf_counter() - t0), 1)
    return out


def cmd_bench(args) -> int:
    if args.bench_cmd == "pipeline":
        from facegate.edge.downloads import celebrity5_dir
        from facegate.edge.images import list_images
        from facegate.edge.registry import default_embedder_path
        photo = args.photo or list_images(celebrity5_dir() / "val" / "jerry_seinfeld")[0]
        embedders = args.embedder or [str(default_embedder_path())]
        rows = bench_pipeline(photo, embedders, args.detector_format, args.threads, args.repeats)
        print("| detector | embedder (backend) | threads | detect | align+quality | embed | total |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['detector']} | {r['embedder']} ({r['backend']}) | {r['threads'] or 'default'} | "
                  f"{r['detect_ms']} ms | {r['align_quality_ms']} ms | {r['embed_ms']} ms | {r['total_ms']} ms |")
        result = {"pipeline": rows, "frame": "640x480, one face", "photo": str(photo)}
    elif args.bench_cmd == "detector":
        from facegate.edge.downloads import celebrity5_dir
        from facegate.edge.images import list_images
        photo = args.photo or list_images(celebrity5_dir() / "val" / "jerry_seinfeld")[0]
        rows = bench_detectors(photo, args.detector, args.format, args.threads, args.repeats, args.min_face)
        print(f"| detector | format | threads | full cascade (in nets) | chained pyramid (in nets) | fast path | ROI "
              f"| max_faces=1 |  (640x480, min face {args.min_face:g})")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['detector']} | {r['format']} | {r['threads'] or 'default'} | {r['full_ms']} ms "
                  f"({r['full_nets_ms']}) | {r['chained_pyramid_ms']} ms ({r['chained_nets_ms']}) | "
                  f"{r['fast_path_ms']} ms | {r.get('roi_ms', '-')} ms | {r.get('max_faces1_ms', '-')} ms |")
        result = {"detectors": rows, "frame": "640x480, one face", "photo": str(photo), "min_face": args.min_face}
        if args.plot and plot_detector_time(rows, args.plot):
            print(f"time split per net: {args.plot}")
    elif args.bench_cmd == "embedder":
        from facegate.edge.registry import default_embedder_path
        rows = bench_embedders(args.embedder or [str(default_embedder_path())], args.threads, args.repeats)
        print("| embedder | backend | threads | size | embed one face |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['embedder']} | {r['backend']} | {r['threads'] or 'default'} | {r['size_mb']} MB | "
                  f"{r['embed_ms']} ms |")
        result = {"embedders": rows}
    else:
        result = bench_gallery(sizes=tuple(args.sizes))
        print("| templates (2 per person) | identify: 1 probe, top-5 people |")
        print("|---|---|")
        for n, ms in result["identify_ms"].items():
            print(f"| {int(n):,} | {ms} ms |")
        print(f"\nopen (decrypt + load) 10k people / 20k templates ({result['file_mb_10k_people']} MB): "
              f"{result['open_ms_10k_people']} ms; enrol into 1k people: {result['enroll_per_s_1k_people']} per s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="speed benchmarks: pipeline stages, gallery")
    bs = b.add_subparsers(dest="bench_cmd", required=True)
    p = bs.add_parser("pipeline", help="per-stage latency on a 640x480 frame with one face")
    p.add_argument("--photo", type=Path, default=None, help="face photo to build the frame from")
    p.add_argument("--embedder", action="append", default=None, help="embedder file(s) (repeatable)")
    p.add_argument("--detector-format", nargs="+", default=["tflite", "onnx"], choices=["tflite", "onnx"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=20)
    g = bs.add_parser("gallery", help="identify latency, open time, enrol throughput")
    g.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    d = bs.add_parser("detector", help="full cascade + door speed features per detector set, format, threads")
    d.add_argument("--detector", nargs="+", default=["mtcnn-teacher", "mtcnn-student"])
    d.add_argument("--format", nargs="+", default=["tflite"], choices=["tflite", "onnx"])
    d.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    d.add_argument("--min-face", type=float, default=40.0)
    d.add_argument("--photo", type=Path, default=None)
    d.add_argument("--repeats", type=int, default=30)
    d.add_argument("--plot", type=Path, default=None, help="also draw where each frame's time goes (PNG)")
    e = bs.add_parser("embedder", help="one-face latency per embedder file and thread count, in one run")
    e.add_argument("--embedder", action="append", default=None, help="embedder file(s) with cards (repeatable)")
    e.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    e.add_argument("--repeats", type=int, default=30)
    for q in (p, g, d, e):
        q.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    b.set_defaults(func=cmd_bench)
