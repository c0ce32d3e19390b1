"""`facegate calibrate thresholds|detector|liveness`: decision thresholds into a model's card, a detector
set's cascade thresholds searched on its training images, and a door camera's own liveness threshold."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegate.edge.errors import DatasetError


def cmd_thresholds(args) -> int:
    from facegate.calibration.calibrate import calibrate_card
    result = calibrate_card(Path(args.model), data=args.data, pairs=args.pairs, root=args.root,
                            per_identity=args.per_identity, fars=args.fars, command=args.command_line,
                            progress=not args.no_progress)
    for far, v in result["thresholds"].items():
        print(f"FAR {far}: threshold {v['threshold']:.4f} (TAR {100 * v['tar']:.2f}%)")
    print(f"written into {args.model}.json ({result['genuine']} genuine / {result['impostor']} impostor pairs)")
    return 0


def cmd_detector(args) -> int:
    from facegate.calibration.detector_thresholds import search_cascade_thresholds

    def show(r: dict) -> None:
        print(f"P/R/O {' / '.join(f'{t:g}' for t in r['thresholds'])}: AP easy {r['ap_easy']:.3f}, "
              f"medium {r['ap_medium']:.3f}, hard {r['ap_hard']:.3f}", flush=True)

    result = search_cascade_thresholds(args.detector, fmt=args.detector_format, wider=args.wider,
                                       holdout_every=args.holdout_every, max_images=args.max_images, report=show)
    result["command"] = args.command_line
    best = " ".join(f"{t:g}" for t in result["best"])
    print(f"best thresholds on the training images: {best} "
          f"(ship them with `facegate distill export-detector --thresholds {best}`)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _add_thresholds(cals) -> None:
    th = cals.add_parser("thresholds", help="thresholds for target FARs, written into the model's card")
    th.add_argument("--model", required=True, help="model file with card (.tflite/.onnx)")
    th.add_argument("--data", type=Path, default=None, help="identity folders (<person>/<image>); all pairs are "
                    "scored (default: ../shared/datasets/celeba_dev/images)")
    th.add_argument("--pairs", type=Path, default=None, help="or a pairs file (LFW format or TSV)")
    th.add_argument("--root", type=Path, default=None, help="root of the pairs file's paths")
    th.add_argument("--per-identity", type=int, default=10, help="images per identity from --data")
    th.add_argument("--fars", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    th.add_argument("--no-progress", action="store_true")
    th.set_defaults(func=cmd_thresholds)


def cmd_pca(args) -> int:
    from facegate.calibration.pca import fit_pca
    from facegate.convert.datasets import celeba_images, lfw_dir
    r = fit_pca(args.model, args.dims, Path(args.data) if args.data else celeba_images(),
                None if args.no_lfw else (Path(args.lfw_dir) if args.lfw_dir else lfw_dir()),
                per_identity=args.per_identity, hold_out_every=args.hold_out_every, fars=args.fars, out=args.out,
                command=args.command_line, progress=not args.no_progress)
    print(f"{r['dims']} of the embedder's dimensions keep {100 * r['variance_kept']:.1f}% of the variance of "
          f"{r['faces']} faces")
    for far, v in r["thresholds"].items():
        full = r["full_dimension"].get(far, {})
        print(f"FAR {far}: threshold {v['threshold']:.4f} (TAR {100 * v['tar']:.2f}%; full dimension: TAR "
              f"{100 * full.get('tar', float('nan')):.2f}%)")
    print(f"written to {r['path']}; use it with `facegate gallery convert --pca {r['path']}`")
    return 0


def _add_pca(cals) -> None:
    pc = cals.add_parser("pca", help="a PCA projection for reduced gallery templates, with its own thresholds, "
                         "written beside the embedder")
    pc.add_argument("--model", default=None, help="embedder (committed name or model file; default: the runtime's)")
    pc.add_argument("--dims", type=int, default=64, help="dimensions kept")
    pc.add_argument("--data", type=Path, default=None, help="identity folders to fit on and calibrate with "
                    "(default: ../shared/datasets/celeba_dev/images)")
    pc.add_argument("--lfw-dir", type=Path, default=None, help="LFW folder: its people outside pairs.txt are added "
                    "to the fit (default ../shared/datasets/lfw)")
    pc.add_argument("--no-lfw", action="store_true", help="fit on --data alone")
    pc.add_argument("--per-identity", type=int, default=10, help="images per identity from --data")
    pc.add_argument("--hold-out-every", type=int, default=8, help="1 in N identities calibrates, the rest fit")
    pc.add_argument("--fars", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    pc.add_argument("--out", type=Path, default=None, help="default: <model>.pca<dims>.npz beside the model")
    pc.add_argument("--no-progress", action="store_true")
    pc.set_defaults(func=cmd_pca)


def _add_detector(cals) -> None:
    de = cals.add_parser("detector", help="search a detector set's cascade thresholds (P, R, O) on the WIDER "
                         "images it trained on; prints what to pass to `distill export-detector --thresholds`")
    de.add_argument("--detector", required=True, help="detector set (committed name or exported folder)")
    de.add_argument("--detector-format", choices=["tflite", "onnx"], default="tflite")
    de.add_argument("--wider", type=Path, default=None, help="WIDER folder with images/, the gt file and "
                    "eval_tools/ (default ../shared/datasets/wider_val_dev)")
    de.add_argument("--holdout-every", type=int, default=4, help="the --hold-out-every distillation used: "
                    "only the other images are scored")
    de.add_argument("--max-images", type=int, default=None, help="first N training images only (quick runs)")
    de.add_argument("--out", type=Path, default=None, help="also write every tried setting as JSON")
    de.set_defaults(func=cmd_detector)


def cmd_liveness(args) -> int:
    from facegate.calibration.liveness_threshold import site_threshold
    from facegate.edge.images import list_images
    from facegate.edge.registry import DEFAULT_LIVENESS, load_detector, load_liveness

    def images(folder: Path | None) -> list[Path]:
        if folder is None:
            return []
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder of images")
        return list_images(folder)
    checker = load_liveness(args.set or DEFAULT_LIVENESS, threads=args.threads)
    r = site_threshold(checker, load_detector(), images(args.live), images(args.spoof), args.bpcer,
                       progress=not args.no_progress)
    print(f"{r['live_faces']} live faces ({r['live_without_face']} images without a face): at the card threshold "
          f"{r['card_threshold']:.3f} {100 * r['bpcer_at_card_threshold']:.1f}% of them are refused; at "
          f"{r['threshold']:.4f}, {100 * r['bpcer']:.1f}%")
    if "apcer" in r:
        print(f"attacks: {r['attacks_accepted']} of {r['attacks']} accepted at {r['threshold']:.4f} "
              f"(APCER {100 * r['apcer']:.1f}%; {r['attacks_without_face']} without a face)")
    for warning in r["warnings"]:
        print(f"warning: {warning}")
    print(f"\nfor this camera's door.toml:\n[liveness]\nset = \"{args.set or DEFAULT_LIVENESS}\"\n"
          f"threshold = {r['threshold']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**r, "set": args.set or DEFAULT_LIVENESS, "command": args.command_line},
                                       indent=2) + "\n")
    return 0


def _add_liveness(cals) -> None:
    lv = cals.add_parser("liveness", help="a door camera's own liveness threshold from its live frames")
    lv.add_argument("--live", type=Path, required=True, help="folder of the door camera's frames of real people")
    lv.add_argument("--spoof", type=Path, default=None, help="folder of attack frames of that camera, if any "
                    "(reported, never used to set the threshold)")
    lv.add_argument("--set", default=None, help="liveness set (default minifasnet-fp16; minifasnet-published-fp16 "
                    "generalises better to new cameras once calibrated)")
    lv.add_argument("--bpcer", type=float, default=0.05, help="share of live faces the threshold may refuse")
    lv.add_argument("--threads", type=int, default=None)
    lv.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    lv.add_argument("--no-progress", action="store_true")
    lv.set_defaults(func=cmd_liveness)


def register(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser("calibrate", help="calibrate decision thresholds (embedder cards, detector cascades, "
                         "a door camera's liveness threshold)")
    cals = cal.add_subparsers(dest="calibrate_cmd", required=True)
    _add_thresholds(cals)
    _add_detector(cals)
    _add_pca(cals)
    _add_liveness(cals)
