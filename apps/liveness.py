"""`facegate liveness check IMAGE...` (is it a live person or a photo / screen?) and `facegate liveness
train` (fine-tune the MiniFASNet set on pad_dev and export every precision with its card)."""
from __future__ import annotations

import argparse
from pathlib import Path

from facegate.apps.common import add_pad_recipe_args, emit, pad_data_paths, pad_recipe, parity_line
from facegate.edge.errors import EXIT_OK, EXIT_REJECT, NoFaceError


def cmd_check(args) -> int:
    from facegate.edge.detect.face import pick_face
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import DEFAULT_LIVENESS, load_detector, load_liveness
    checker = load_liveness(args.set or DEFAULT_LIVENESS, threshold=args.threshold)
    detector = load_detector()
    worst = EXIT_OK
    for image in args.images:
        rgb = load_rgb(image)
        face = pick_face(detector.detect(rgb), rgb.shape)
        if face is None:
            raise NoFaceError(f"no face found in {image}: nothing to check")
        result = checker.check(rgb, face.box)
        emit({"image": str(image), "decision": "live" if result.live else "attack suspected", **result.to_dict()},
             args.json)
        worst = worst if result.live else EXIT_REJECT
    return worst


def cmd_train(args) -> int:
    from facegate.convert.pad.train import train_liveness_set
    pad, weights = pad_data_paths(args.pad_dir, args.weights)
    report = train_liveness_set(pad, weights, args.out_root, args.work, args.epochs, args.bpcer, args.max_images,
                                args.set_name, tuple(args.precision), command=args.command_line, cfg=pad_recipe(args))
    m, p = report["fine_tuned"], report["pretrained"]
    per_type = ", ".join(f"{k} {v['apcer']} of {v['n']}" for k, v in m["apcer_per_type"].items())
    print(f"Keras threshold {report['threshold']:.4f} (BPCER {m['bpcer']:.3f} on validation): APCER {m['apcer']} "
          f"(per type {per_type}); "
          f"pretrained, same protocol: APCER {p['apcer']} at BPCER {p['bpcer']}")
    for key, value in report["parity"].items():
        print("  " + parity_line(key, value))
    print(f"models in {args.out_root}/{args.set_name}-*; log, plot and report in {args.work}")
    return 0


def cmd_crossval(args) -> int:
    from facegate.convert.pad.train import crossval_source
    from facegate.edge.registry import DEFAULT_LIVENESS, load_liveness
    pad, weights = pad_data_paths(args.pad_dir, args.weights)
    threshold = args.threshold if args.threshold is not None else load_liveness(DEFAULT_LIVENESS).threshold
    report = crossval_source(pad, weights, args.work, threshold, args.source, args.folds, args.epochs,
                             command=args.command_line, max_images=args.max_images, cfg=pad_recipe(args))
    m = report["held_out"]
    per_type = ", ".join(f"{k} {v['apcer']} of {v['n']}" for k, v in m["apcer_per_type"].items())
    print(f"{args.source}, {args.folds} subject folds, held out, threshold {threshold:.4f}: BPCER {m['bpcer']} "
          f"of {m['live']}, APCER {m['apcer']} ({per_type})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("liveness", help="presentation attack detection: check photos, train the set")
    gs = g.add_subparsers(dest="liveness_cmd", required=True)
    c = gs.add_parser("check", help="live person or attack (printed photo, screen)? exit 0 live, 11 attack suspected")
    c.add_argument("images", nargs="+", type=Path)
    c.add_argument("--set", default=None, help="liveness set name or folder (default: minifasnet-fp16)")
    c.add_argument("--threshold", type=float, default=None, help="override the card's threshold")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)
    t = gs.add_parser("train", help="fine-tune MiniFASNetV2 + V1SE on pad_dev, export fp16/int8 TFLite and ONNX")
    t.add_argument("--pad-dir", type=Path, default=None, help="pad_dev folder (default: ../shared/datasets/pad_dev)")
    t.add_argument("--weights", type=Path, default=None, help="the MiniFASNet .pth folder "
                   "(default: ../shared/pretrained/minifasnet)")
    t.add_argument("--out-root", type=Path, required=True, help="where the <set>-fp16/-int8/-fp32 folders go")
    t.add_argument("--work", type=Path, required=True, help="checkpoints, log, plot, report")
    t.add_argument("--set-name", default="minifasnet")
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--bpcer", type=float, default=0.05, help="the threshold keeps this share of live people out")
    t.add_argument("--max-images", type=int, default=None, help="a tiny run on this many pad_dev images (tests)")
    t.add_argument("--precision", nargs="+", default=["fp16", "int8", "fp32"], choices=["fp16", "int8", "fp32"])
    add_pad_recipe_args(t)
    t.set_defaults(func=cmd_train)
    x = gs.add_parser("crossval", help="held-out APCER for one source's attacks: fine-tune without each fold of "
                      "its subjects, score them at the shipped threshold")
    x.add_argument("--pad-dir", type=Path, default=None)
    x.add_argument("--weights", type=Path, default=None)
    x.add_argument("--work", type=Path, required=True)
    x.add_argument("--source", default="msu", choices=["msu", "nuaa"])
    x.add_argument("--folds", type=int, default=5)
    x.add_argument("--epochs", type=int, default=8)
    x.add_argument("--threshold", type=float, default=None, help="default: the shipped set's card")
    x.add_argument("--max-images", type=int, default=None, help="a tiny run: the source and this many others")
    add_pad_recipe_args(x)
    x.set_defaults(func=cmd_crossval)
