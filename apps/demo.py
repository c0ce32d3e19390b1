"""`facegate demo`: the README's main job, end to end on the embedded defaults.

Fetches the 5-celebrity photos into the cache (never committed), enrols three people from their
train photos into a fresh encrypted gallery, then identifies and verifies every val photo: the
enrolled people must be accepted as themselves and the two strangers refused. Prints each
decision with its score and timing, and a summary.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from facegate.edge.errors import EXIT_REJECT, NoFaceError
from facegate.edge.face.capture import encode_crop
from facegate.edge.gallery import Decision, GalleryStore, KeySource, Matcher, ModelBinding
from facegate.edge.gallery.matching import thresholds_from_card
from facegate.edge.images import list_images, load_rgb

log = logging.getLogger(__name__)
ENROLLED = ("ben_afflek", "elton_john", "jerry_seinfeld")
STRANGERS = ("madonna", "mindy_kaling")


def ensure_teacher_export() -> Path:
    """The FaceNet teacher exported to TFLite (made on first use on a workstation with TensorFlow):
    for comparing against the student and for galleries that must match the teacher exactly."""
    from facegate.edge.registry import teacher_export_path
    if teacher_export_path().exists():
        return teacher_export_path()
    try:
        from facegate.convert.export.model import export_model
    except ImportError as exc:
        from facegate.edge.errors import ModelError
        raise ModelError(f"no teacher export at {teacher_export_path()}, and exporting one needs TensorFlow "
                         f"({exc.name} is missing): pip install 'facegate[convert]', or copy the file there") from exc
    log.info("first run with the teacher: exporting the FaceNet teacher to TFLite (rebuilt from its pinned h5 "
             "if this machine has not yet; about a minute; the next runs reuse %s)", teacher_export_path())
    r = export_model("facenet-teacher", "tflite", "fp32", out_dir=teacher_export_path().parent, lfw_pairs=0,
                     command="facegate demo (first-run teacher export)")
    log.info("teacher export ready: %s (%.0f MB), mean cosine %.5f to the Keras teacher on held-out faces",
             r.path.name, r.path.stat().st_size / 1e6, r.parity["cosine_mean"])
    return teacher_export_path()


def short_name(name: str, width: int = 33) -> str:
    """A file name that fits a column and still tells photos apart: its start and its end, not just
    its start (the 5-celebrity files are flattened URLs that share long prefixes)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 3
    return f"{name[:head]}…{name[-(width - 1 - head):]}"


def run_demo(data: Path | None = None, workdir: Path | None = None, per_person: int = 8, threads: int | None = None,
             far: str = "1e-3", embedder: Path | None = None) -> dict:
    """The demo; with `workdir` the gallery and its key file stay there for the other commands to use,
    without one they live in a temporary folder that is removed at the end."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="facegate-demo-") as tmp:
            return _run_demo(data, Path(tmp), per_person, threads, far, embedder, keep=False)
    return _run_demo(data, Path(workdir), per_person, threads, far, embedder, keep=True)


def _run_demo(data: Path | None, workdir: Path, per_person: int, threads: int | None, far: str,
              embedder: Path | None, keep: bool) -> dict:
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.face.pipeline import Pipeline
    from facegate.edge.gallery.keys import write_keyfile
    from facegate.edge.registry import default_embedder_path

    root = Path(data) if data else celebrity5_dir()
    pipe = Pipeline.from_config(embedder=str(embedder or default_embedder_path()), threads=threads)
    accept, retry = thresholds_from_card(pipe.embedder.card.thresholds, far)
    workdir.mkdir(parents=True, exist_ok=True)
    gallery_path, key_path = workdir / "demo-gallery.fgg", workdir / "demo-gallery.key"
    for old in (gallery_path, key_path):   # every run enrols afresh
        old.unlink(missing_ok=True)
    store = GalleryStore(gallery_path, KeySource.from_keyfile(write_keyfile(key_path)))
    binding = ModelBinding.for_embedder(pipe.embedder)
    store.create(binding, keep_crops=True)
    print(f"models: detector {pipe.detector.name}, embedder {pipe.embedder.name} "
          f"(accept >= {accept:.3f} at FAR {far}, retry >= {retry:.3f})")
    print(f"gallery: {store.path} (AES-256-GCM; key {key_path.name}, mode 600)" if keep else
          "gallery: a temporary encrypted gallery, removed at the end (--workdir DIR keeps it with its key)")
    timings: dict[str, list[float]] = {"detect": [], "embed": []}
    with store.transaction(expect=binding) as gallery:
        for name in ENROLLED:
            person = gallery.add_person(name.replace("_", " ").title())
            vecs, crops = [], []
            for path in list_images(root / "train" / name)[:per_person]:
                try:
                    image = load_rgb(path)
                    emb = pipe.embed(image)
                except NoFaceError as exc:
                    print(f"  enrol {name}: skipped {path.name}: {exc}")
                    continue
                vecs.append(emb.vector)
                crops.append(encode_crop(pipe.crop(image, emb.face)))
            gallery.add_templates(person.id, vecs, crops)
            print(f"enrolled {person.name}: {len(vecs)} templates")
    matcher = Matcher(store.load(expect=binding), accept, retry)
    rows, stats = [], {"identify_ok": 0, "identify_total": 0, "false_accepts": 0, "genuine_accepts": 0,
                       "genuine_total": 0, "impostor_rejects": 0, "impostor_total": 0, "no_face": 0}
    print(f"\n{'photo':<34} {'who':<15} {'identify':<26} {'verify (claim)':<28} ms")
    probe_no = 0
    for name in ENROLLED + STRANGERS:
        for path in list_images(root / "val" / name):
            probe_no += 1
            try:
                emb = pipe.embed(load_rgb(path), require_quality=False)
            except NoFaceError:
                stats["no_face"] += 1
                continue
            for k in timings:
                timings[k].append(emb.timings_ms[k])
            ident = matcher.identify(emb.vector)
            expected = name.replace("_", " ").title() if name in ENROLLED else None
            ok = (ident.decision is Decision.ACCEPT and ident.name == expected) if expected else \
                 (ident.decision is not Decision.ACCEPT)
            stats["identify_ok"] += ok
            stats["identify_total"] += 1
            if ident.decision is Decision.ACCEPT and ident.name != expected:
                stats["false_accepts"] += 1
            # strangers claim to be an enrolled person (rotating, so every run makes the same claims)
            claim = expected or ENROLLED[probe_no % len(ENROLLED)].replace("_", " ").title()
            ver = matcher.verify(emb.vector, claim)
            if expected:
                stats["genuine_total"] += 1
                stats["genuine_accepts"] += ver.decision is Decision.ACCEPT
            else:
                stats["impostor_total"] += 1
                stats["impostor_rejects"] += ver.decision is not Decision.ACCEPT
            who = f"{ident.decision.value} {ident.name or ''}".strip()
            print(f"{short_name(path.name):<34} {name[:14]:<15} {who + f' {ident.score:.2f}':<26} "
                  f"{ver.decision.value + f' ({claim.split()[0]}) {ver.score:.2f}':<28} "
                  f"{emb.timings_ms['detect'] + emb.timings_ms['embed']:.0f}")
            rows.append({"image": str(path), "person": name, "identify": ident.to_dict(), "verify": ver.to_dict()})
    stats["median_detect_ms"] = round(statistics.median(timings["detect"]), 1) if timings["detect"] else None
    stats["median_embed_ms"] = round(statistics.median(timings["embed"]), 1) if timings["embed"] else None
    print(f"\nidentify: {stats['identify_ok']}/{stats['identify_total']} correct, "
          f"{stats['false_accepts']} false accepts | verify: genuine accepted "
          f"{stats['genuine_accepts']}/{stats['genuine_total']}, impostors refused "
          f"{stats['impostor_rejects']}/{stats['impostor_total']} | median detect {stats['median_detect_ms']} ms, "
          f"embed {stats['median_embed_ms']} ms")
    if keep:
        print(f"\nkept: {store.path} and its key {key_path}; try\n"
              f"  facegate identify --gallery {store.path} --key-file {key_path} PHOTO.jpg\n"
              f"  facegate gallery ls --gallery {store.path} --key-file {key_path}")
    return {"stats": stats, "rows": rows, "gallery": str(store.path) if keep else None,
            "key_file": str(key_path) if keep else None}


def cmd_demo(args) -> int:
    embedder = ensure_teacher_export() if args.embedder == "teacher" else args.embedder
    result = run_demo(args.data, args.workdir, threads=args.threads, far=args.far, embedder=embedder)
    return EXIT_REJECT if result["stats"]["false_accepts"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="enrol 3 of the 5-celebrity people, then identify/verify everyone")
    p.add_argument("--data", type=Path, default=None, help="folder with train/ and val/ person folders")
    p.add_argument("--workdir", type=Path, default=None, help="keep the demo gallery and its key file here "
                   "(default: a temporary folder, removed at the end)")
    p.add_argument("--far", default="1e-3", help="operating point from the model card")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--embedder", default=None, help="model file with card (default: the committed student), or "
                   "'teacher' for the FaceNet teacher (exported to TFLite on first use; needs facegate[convert])")
    p.set_defaults(func=cmd_demo)
