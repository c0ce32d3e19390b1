"""`facegate bench ...`: the speed numbers behind docs/benchmarks.md (never timed unit tests).

* `bench pipeline`: per-stage latency on a 640x480 frame with one face, for each detector format
  and embedder file given.
* `bench detector` (apps/bench_detector.py): the cascade per detector set, format and thread count in
  one run, with the time spent inside each net and the door speed features.
* `bench gallery`: 1:N identify latency for 1k/10k/100k templates, open (decrypt + load) time for
  10k people, enrol throughput (one atomic, fsync'ed write per enrolment).
"""
from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.images import load_rgb
from facegate.edge.timing import median_ms


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
        from facegate.apps.bench_detector import bench_detectors, plot_detector_time
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
