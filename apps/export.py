"""`facegate export`: a Keras model to TFLite / ONNX / Core ML / SavedModel with its card and a parity
check against the source. `--list` prints the format table without importing TensorFlow."""
from __future__ import annotations

import argparse
from pathlib import Path

from facegate.edge.errors import UsageError


def cmd_export(args) -> int:
    from facegate.convert.export.formats import table
    if args.list:
        print(table())
        return 0
    if args.task == "liveness":
        return _export_liveness(args)
    if not args.model:
        raise UsageError("--model is required (a registered model such as facenet-teacher, or a .keras file "
                         "with its card); `facegate export --list` shows the formats")
    from facegate.convert.export.model import export_model
    r = export_model(args.model, args.format, args.quant, args.out, data=args.data, fraction=args.fraction,
                     calib_images=args.calib_images, equalize=not args.no_equalize, fuse=not args.no_fuse,
                     float_ops=tuple(op.upper() for op in args.float_ops or ()),
                     parity_data=args.parity_data, floor=args.floor, opset=args.opset, io_type=args.io_type,
                     lfw_dir=args.lfw_dir, lfw_pairs=args.lfw_pairs, full_lfw=args.full,
                     command=args.command_line, progress=not args.no_progress)
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


#: --quant of a liveness export -> the set's precision folder (fp32 is the ONNX file)
LIVENESS_PRECISION = {("tflite", "fp16"): "fp16", ("tflite", "int8"): "int8", ("onnx", "fp32"): "fp32"}


def _export_liveness(args) -> int:
    """A liveness set from the checkpoints of `facegate liveness train --work W` (both nets, one precision)."""
    from facegate.apps.common import pad_data_paths, parity_line
    from facegate.convert.pad.export import INT8_FLOAT_OPS, export_trained
    if args.source_work is None and not args.published:
        raise UsageError("--task liveness needs --from WORK (the --work folder of `facegate liveness train`) "
                         "or --published (the MiniFASNet weights as published)")
    fmt = {"android": "tflite"}.get(args.format, args.format)
    precision = LIVENESS_PRECISION.get((fmt, args.quant))
    if precision is None:
        raise UsageError(f"a liveness set exports as tflite fp16, tflite int8 or onnx fp32, not {fmt} {args.quant}")
    pad, weights = pad_data_paths(args.data)
    float_ops = tuple(op.upper() for op in args.float_ops) if args.float_ops else INT8_FLOAT_OPS
    out_root = args.out or Path("runs") / "export"
    licence = weights / "LICENSE"
    if args.published:
        from facegate.convert.pad.export import export_published
        set_name = args.set_name if args.set_name != "minifasnet" else "minifasnet-published"
        parity = export_published(weights, pad, out_root, set_name, (precision,), command=args.command_line)
        print(f"set: {out_root / (set_name + '-' + precision)} (threshold: the authors' rule; set a camera's "
              "own with `facegate calibrate liveness`)")
        return 0
    parity = export_trained(args.source_work, pad, out_root, args.set_name, (precision,), float_ops,
                            licence=licence if licence.is_file() else None, command=args.command_line)
    for key, value in parity.items():
        print(parity_line(key, value))
    print(f"set: {out_root / (args.set_name + '-' + precision)} (cards beside each file)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help="export a Keras model to tflite/onnx/coreml/saved_model with card + parity check")
    exp.add_argument("--task", choices=["embedding", "liveness"], default="embedding",
                     help="liveness: both MiniFASNets of a `liveness train` run (--from WORK) as one set")
    exp.add_argument("--from", dest="source_work", type=Path, default=None,
                     help="--task liveness: the --work folder of `facegate liveness train` (checkpoints, report)")
    exp.add_argument("--set-name", default="minifasnet", help="--task liveness: the set folder is <name>-<precision>")
    exp.add_argument("--published", action="store_true", help="--task liveness: the MiniFASNet pair as published "
                     "(not fine-tuned; for sites that run `facegate calibrate liveness`)")
    exp.add_argument("--model", help="registered model (facenet-teacher) or .keras file with card")
    exp.add_argument("--format", default="tflite", help="tflite|onnx|coreml|saved_model (aliases android, ios)")
    exp.add_argument("--quant", default="fp32", help="fp32|fp16|dynamic|int8 (what the format allows)")
    exp.add_argument("--data", type=Path, default=None, help="face photos for the int8 representative set "
                     "(default: 5-celebrity train; --task liveness: the pad_dev folder)")
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
