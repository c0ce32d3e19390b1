"""`facegate bench ...`: the speed numbers behind docs/benchmarks.md (never timed unit tests).

* `bench pipeline`: per-stage latency on a 640x480 frame with one face, for each detector format
  and embedder file given.
* `bench detector` (edge/bench/detector.py): the cascade per detector set, format and thread count in
  one run, with the time spent inside each net and the door speed features.
* `bench liveness`: one face's liveness check (both MiniFASNets) per committed set and thread count.
* `bench soak` (edge/bench/soak.py): a real door process on replayed frames for N minutes; RSS, open
  files and threads sampled from /proc must stay flat.
* `bench gallery`: 1:N identify latency for 1k/10k/100k templates, open (decrypt + load) time for
  10k people, enrol throughput (one atomic, fsync'ed write per enrolment).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegate.edge.errors import DatasetError


def _default_photo(photo: Path | None) -> Path:
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.images import list_images
    return photo or list_images(celebrity5_dir() / "val" / "jerry_seinfeld")[0]


def _write(result: dict, out: Path | None) -> int:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_pipeline(args) -> int:
    from facegate.edge.bench.pipeline import bench_pipeline, pipeline_settings
    from facegate.edge.registry import default_embedder_path
    photo = _default_photo(args.photo)
    embedders = args.embedder or [str(default_embedder_path())]
    settings = pipeline_settings()
    print(f"640x480 frame with one face ({photo.name} at 60% of the frame height); door detector settings: "
          + ", ".join(f"{k} {v}" for k, v in settings.items()) + f"; median of {args.repeats} (frame: p10-p90)")
    liveness = None if args.liveness == "none" else args.liveness
    rows = bench_pipeline(photo, embedders, args.detector_format, args.threads, args.repeats, args.detector_threads,
                          liveness)
    print(f"| detector (threads) | embedder (backend) | threads | detect | align+quality | liveness ({liveness}) "
          "| embed | frame (p10-p90) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        live = "-" if r["liveness_ms"] is None else f"{r['liveness_ms']} ms"
        print(f"| {r['detector']} ({r['detector_threads']}) | {r['embedder']} ({r['backend']}) | {r['threads']} | "
              f"{r['detect_ms']} ms | "
              f"{r['align_quality_ms']} ms | {live} | {r['embed_ms']} ms | {r['frame_ms']} ms "
              f"({r['frame_p10_ms']}-{r['frame_p90_ms']}) |")
    return _write({"pipeline": rows, "frame": "640x480, one face", "photo": str(photo), "settings": settings,
                   "repeats": args.repeats}, args.out)


def cmd_detector(args) -> int:
    from facegate.edge.bench.detector import bench_detectors
    photo = _default_photo(args.photo)
    rows = bench_detectors(photo, args.detector, args.format, args.threads, args.repeats, args.min_face,
                           backends=args.backend)
    print(f"| detector | format | backend | threads | full cascade (in nets) | chained pyramid (in nets) | fast path "
          f"| ROI | max_faces=1 |  (640x480, min face {args.min_face:g})")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['detector']} | {r['format']} | {r['backend']} | {r['threads'] or 'default'} | {r['full_ms']} ms "
              f"({r['full_nets_ms']}) | {r['chained_pyramid_ms']} ms ({r['chained_nets_ms']}) | "
              f"{r['fast_path_ms']} ms | {r.get('roi_ms', '-')} ms | {r.get('max_faces1_ms', '-')} ms |")
    if args.plot:
        from facegate.convert.evaluate.report import plot_detector_time
        if plot_detector_time(rows, args.plot):
            print(f"time split per net: {args.plot}")
    return _write({"detectors": rows, "frame": "640x480, one face", "photo": str(photo), "min_face": args.min_face},
                  args.out)


def cmd_embedder(args) -> int:
    from facegate.edge.bench.pipeline import bench_embedders
    from facegate.edge.registry import default_embedder_path
    rows = bench_embedders(args.embedder or [str(default_embedder_path())], args.threads, args.repeats,
                           backends=args.backend)
    print("| embedder | backend | threads | size | embed one face |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['embedder']} | {r['backend']} | {r['threads'] or 'default'} | {r['size_mb']} MB | "
              f"{r['embed_ms']} ms |")
    return _write({"embedders": rows}, args.out)


def _storage(text: str) -> str:
    from facegate.edge.bench.gallery import parse_storage
    try:
        parse_storage(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    from facegate.edge.backends import known_backends
    p.add_argument("--backend", nargs="+", choices=["auto", *known_backends()], default=None,
                   help="runtimes to compare, each on the files it runs (auto: a file's default; e.g. auto "
                   "onnxruntime-openvino puts LiteRT, ORT CPU and ORT OpenVINO side by side)")


def cmd_gallery(args) -> int:
    from facegate.edge.bench.gallery import bench_gallery
    result = bench_gallery(sizes=tuple(args.sizes), repeats=args.repeats, batch=args.batch,
                           storages=tuple(args.storage), progress=not args.no_progress)
    print(f"{result['dim']}-D unit templates, two per person; median of {result['repeats']} (p90); int8 galleries "
          f"rank with ONNX Runtime's {result.get('int8_kernel', 'integer product')} and rescore the candidates exactly")
    print(f"| templates | storage | templates' size | identify: 1 probe, top-5 people | {result['batch']} probes "
          "in one call |")
    print("|---|---|---|---|---|")
    for n in (str(s) for s in args.sizes):
        for dtype in result["storages"]:
            print(f"| {int(n):,} | {dtype} | {result['template_mb'][dtype][n]} MB | {result['identify_ms'][dtype][n]} ms "
                  f"({result['identify_p90_ms'][dtype][n]}) | {result['identify_batch_ms'][dtype][n]} ms |")
    for dtype in result["storages"]:
        print(f"{dtype}: file of 10k people / 20k templates {result['file_mb_10k_people'][dtype]} MB, open (decrypt + "
              f"load) {result['open_ms_10k_people'][dtype]} ms")
    print(f"enrol into 1k people: {result['enroll_per_s_1k_people']} per s")
    return _write(result, args.out)


def cmd_peers(args) -> int:
    from facegate.convert.datasets import lfw_dir, wider_dir
    from facegate.edge.bench.peers import bench_peers, markdown, peer_frames
    frames = peer_frames(args.lfw or lfw_dir() / "images", args.wider or wider_dir() / "images", args.frames, args.seed)
    result = bench_peers(frames, passes=args.passes, threads=args.threads)
    result["command"] = args.command_line
    table = markdown(result, args.command_line)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "peers.md").write_text(table)
        _write(result, args.out / "peers.json")
        print(f"written: {args.out / 'peers.json'}, {args.out / 'peers.md'}")
    return 0


def _add_peers(bs) -> None:
    pe = bs.add_parser("peers", help="the door frame against face_recognition (dlib HOG + ResNet) on the same "
                       "synthetic door frames, interleaved (needs the optional peer: see README)")
    pe.add_argument("--frames", type=int, default=40, help="synthetic 640x480 door frames")
    pe.add_argument("--seed", type=int, default=0, help="the frames are the same for the same seed")
    pe.add_argument("--passes", type=int, default=3, help="passes over the frames, every system per frame")
    pe.add_argument("--threads", type=int, default=2, help="facegate's inference threads")
    pe.add_argument("--lfw", type=Path, default=None, help="LFW images/ (default ../shared/datasets/lfw/images)")
    pe.add_argument("--wider", type=Path, default=None, help="WIDER images/ (default ../shared/datasets/wider_val_dev/images)")
    pe.add_argument("--out", type=Path, default=None, help="folder for peers.json and peers.md")
    pe.set_defaults(func=cmd_peers)


def cmd_liveness(args) -> int:
    from facegate.edge.bench.liveness import bench_liveness
    photo = _default_photo(args.photo)
    rows = bench_liveness(photo, args.set, args.threads, args.repeats)
    print(f"liveness check of one face (both nets: crops + inference; {photo.name} in a 640x480 frame), "
          f"median of {args.repeats}")
    print("| set | threads | size | check one face | live score |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['threads']} | {r['size_kb']} kB | {r['check_ms']} ms | {r['score']} |")
    return _write({"liveness": rows, "photo": str(photo)}, args.out)


def cmd_soak(args) -> int:
    import tempfile

    from facegate.edge.bench.soak import MAX_RSS_GROWTH_MB, plot, soak
    from facegate.edge.errors import EXIT_SELFTEST_FAILED
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facegate-soak-"))
    result = soak(workdir, args.minutes, args.sample_every, embedder=args.embedder, fps=args.fps)
    s = result["summary"]
    print(f"door soak, {s['minutes']:g} min: {s['frames']} frames ({s['fps']} fps), RSS {s['rss_start_mb']} -> "
          f"{s['rss_end_mb']} MB (growth {s['rss_growth_mb']} MB, limit {MAX_RSS_GROWTH_MB:g}; peak {s['rss_peak_mb']} MB), "
          f"open files {s['fds_min']}-{s['fds_max']} (trend {s['fds_growth']:+g}), threads {s['threads_min']}-"
          f"{s['threads_max']} (trend {s['threads_growth']:+g}), "
          f"{s['audit_entries']} audit entries kept of {s['audit_last_seq']} (verified), exit {s['exit_code']}, "
          f"HTTP errors {s['http_errors']}: {'FLAT' if s['flat'] else 'NOT FLAT'}")
    if args.plot and plot(result, args.plot):
        print(f"plot: {args.plot}")
    _write(result, args.out)
    return 0 if s["flat"] else EXIT_SELFTEST_FAILED


#: a real camera frame of a live person (MSU-MFSD, in ../shared's pad_dev): what a door sends the API
SITE_PHOTO = Path("pad_dev") / "live" / "msu_real_client002_android_SD_scene01.jpg"


def cmd_site(args) -> int:
    from facegate.convert.datasets import shared_datasets
    from facegate.edge.bench.site import bench_site, markdown
    photo = None
    if not args.no_image:
        photo = args.photo or shared_datasets() / SITE_PHOTO
        if not photo.is_file():
            raise DatasetError(f"no photo for identify-by-image: {photo} is missing; give --photo or --no-image")
    result = bench_site(sizes=tuple(args.sizes), clients=args.clients, seconds=args.seconds,
                        image_clients=args.image_clients, image_seconds=args.image_seconds, photo=photo)
    result["command"] = args.command_line
    table = markdown(result)
    print(table)
    if args.out:
        args.out.with_suffix(".md").parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(f"`{args.command_line}`\n\n{table}")
    return _write(result, args.out)


def cmd_fleet(args) -> int:
    from facegate.edge.bench.fleet import bench_fleet, markdown
    result = bench_fleet(doors=args.doors, enrolments=args.enrolments, ingest_s=args.seconds, batch=args.batch,
                         interval=args.interval)
    result["command"] = args.command_line
    table = markdown(result)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fleet.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "fleet.md").write_text(f"`{args.command_line}`\n\n{table}")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="speed benchmarks: pipeline stages, detector, embedder, gallery, peers")
    bs = b.add_subparsers(dest="bench_cmd", required=True)
    p = bs.add_parser("pipeline", help="per-stage latency on a 640x480 frame with one face")
    p.add_argument("--photo", type=Path, default=None, help="face photo to build the frame from")
    p.add_argument("--embedder", action="append", default=None, help="embedder file(s) (repeatable)")
    p.add_argument("--detector-format", nargs="+", default=["tflite", "onnx"], choices=["tflite", "onnx"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="the embedder's thread counts, each timed "
                   "in this run")
    p.add_argument("--detector-threads", type=int, default=None, help="the detector nets' threads (default: the "
                   "pipeline's, 1); 0: the same as --threads, row by row")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--liveness", default="minifasnet-fp16", help="liveness set of the liveness stage (the door's "
                   "default), or 'none' to time the pipeline without it")
    p.set_defaults(func=cmd_pipeline)
    g = bs.add_parser("gallery", help="identify latency, open time, enrol throughput")
    g.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    g.add_argument("--repeats", type=int, default=50)
    g.add_argument("--batch", type=int, default=16, help="probes per call in the batched identify column")
    g.add_argument("--storage", nargs="+", type=_storage, default=["float32", "float16", "int8"],
                   help="template storages to compare: float32, float16, int8, each optionally PCA-reduced "
                   "(int8+pca64)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_gallery)
    d = bs.add_parser("detector", help="full cascade + door speed features per detector set, format, threads")
    d.add_argument("--detector", nargs="+", default=["mtcnn-teacher", "mtcnn-student"])
    d.add_argument("--format", nargs="+", default=["tflite"], choices=["tflite", "onnx"])
    d.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    d.add_argument("--min-face", type=float, default=40.0)
    d.add_argument("--photo", type=Path, default=None)
    d.add_argument("--repeats", type=int, default=30)
    d.add_argument("--plot", type=Path, default=None, help="also draw where each frame's time goes (PNG)")
    _add_backend_arg(d)
    d.set_defaults(func=cmd_detector)
    e = bs.add_parser("embedder", help="one-face latency per embedder file and thread count, in one run")
    e.add_argument("--embedder", action="append", default=None, help="embedder file(s) with cards (repeatable)")
    e.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    e.add_argument("--repeats", type=int, default=30)
    _add_backend_arg(e)
    e.set_defaults(func=cmd_embedder)
    lv = bs.add_parser("liveness", help="liveness check latency per committed set and thread count")
    lv.add_argument("--set", nargs="+", default=["minifasnet-fp16", "minifasnet-int8", "minifasnet-fp32"])
    lv.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    lv.add_argument("--photo", type=Path, default=None)
    lv.add_argument("--repeats", type=int, default=30)
    lv.set_defaults(func=cmd_liveness)
    st = bs.add_parser("site", help="the site server's identify API under concurrent loopback clients, by embedding and "
                       "by image, per gallery size")
    st.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="enrolled templates")
    st.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (by embedding)")
    st.add_argument("--seconds", type=float, default=5.0, help="measured seconds per size (by embedding)")
    st.add_argument("--image-clients", type=int, default=2)
    st.add_argument("--image-seconds", type=float, default=5.0)
    st.add_argument("--photo", type=Path, default=None,
                    help="camera frame sent as is for identify-by-image (default: a live MSU-MFSD frame of pad_dev)")
    st.add_argument("--no-image", action="store_true", help="skip identify-by-image")
    st.add_argument("--out", type=Path, default=None, help="JSON result (and a .md table beside it)")
    st.set_defaults(func=cmd_site)
    fl = bs.add_parser("fleet", help="N simulated doors against one mosquitto and one site server on loopback: "
                       "enrolment-to-every-door time, events ingested per second, lost and duplicated events")
    fl.add_argument("--doors", type=int, default=200)
    fl.add_argument("--enrolments", type=int, default=5, help="enrolments timed one after another")
    fl.add_argument("--seconds", type=float, default=10.0, help="how long every door publishes events")
    fl.add_argument("--batch", type=int, default=10, help="entries per events message")
    fl.add_argument("--interval", type=float, default=0.05, help="seconds between a door's messages")
    fl.add_argument("--out", type=Path, default=None, help="folder for fleet.json and fleet.md")
    fl.set_defaults(func=cmd_fleet)
    k = bs.add_parser("soak", help="a real door process on replayed frames for N minutes: memory, open files and "
                      "threads must stay flat (exit 16 if not)")
    k.add_argument("--minutes", type=float, default=60.0)
    k.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    k.add_argument("--fps", type=float, default=30.0, help="replay at a camera's frame rate (0: as fast as it goes)")
    k.add_argument("--embedder", default=None, help="embedder file with card (default: the runtime default)")
    k.add_argument("--workdir", type=Path, default=None, help="where frames, gallery, audit log go (default: a "
                   "temporary folder)")
    k.add_argument("--plot", type=Path, default=None, help="also draw RSS, open files and threads over time (PNG)")
    k.set_defaults(func=cmd_soak)
    for q in (p, g, d, e, k, lv):
        q.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    _add_peers(bs)
