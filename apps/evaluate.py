"""`facegate eval lfw|pairs|wider|lfw-detect|celebrity5|pad`: measure models; every evaluation writes JSON,
markdown and plots into --out with the command inside."""
from __future__ import annotations

import argparse
from pathlib import Path

from facegate.apps.common import (
    add_detector_args,
    add_eval_args,
    add_output_args,
    add_pad_recipe_args,
    detector_from_args,
    pad_data_paths,
    pad_recipe,
)
from facegate.edge.errors import DatasetError


def cmd_verification(args) -> int:
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.evaluate.pairs import balanced_subset, read_lfw_pairs, read_pairs
    from facegate.convert.evaluate.verification import evaluate_pairs
    from facegate.edge.registry import get_embedder

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
    embedder = get_embedder(args.model, threads=args.threads)
    probe = get_embedder(args.probe_model, threads=args.threads) if args.probe_model else None
    finder = FaceFinder(detector_from_args(args), use_cache=not args.no_cache)
    out = args.out or Path("runs") / "eval" / args.eval_task
    stem = f"{args.eval_task}_{Path(embedder.name).stem}" + (f"_{args.align}" if args.align else "")
    if probe is not None:
        stem += f"_probe_{Path(probe.name).stem}"
        title += f" — enrolled with {embedder.name}, probed with {probe.name}"
    r = evaluate_pairs(pairs, embedder, finder, out, stem, title, args.command_line, alignment=args.align,
                       use_cache=not args.no_cache, progress=not args.no_progress, probe_embedder=probe)
    far3 = r["tar_at_far_1e-3"]
    print(f"{title} — {r['model']}: accuracy {100 * r['accuracy_mean']:.2f}% ± {100 * r['accuracy_std']:.2f}, "
          f"AUC {r['roc_auc']:.4f}, EER {100 * r['eer']:.2f}%, "
          f"TAR@FAR1e-3 {'n/a' if far3 is None else f'{100 * far3:.2f}%'}, "
          f"no face in {r['images_without_face']}/{r['images']} images")
    print(f"results: {out / (stem + '.json')}")
    return 0


def cmd_templates(args) -> int:
    from facegate.convert.datasets import celeba_images, lfw_dir
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.convert.evaluate.templates import default_sets, evaluate_storage
    from facegate.edge.registry import get_embedder
    lfw = Path(args.lfw_dir) if args.lfw_dir else lfw_dir()
    celeba = None if args.no_celeba else (Path(args.celeba) if args.celeba else celeba_images())
    sets = default_sets(lfw, celeba, args.per_identity, args.max_pairs)
    embedder = get_embedder(args.model, threads=args.threads)
    finder = FaceFinder(detector_from_args(args), use_cache=not args.no_cache)
    out = args.out or Path("runs") / "eval" / "templates"
    from facegate.edge.gallery.projection import Projection
    r = evaluate_storage(embedder, finder, sets, out, args.command_line, use_cache=not args.no_cache,
                         progress=not args.no_progress, projections=[Projection.load(p) for p in args.pca])
    for name, s in r["sets"].items():
        for dtype, row in s["storages"].items():
            print(f"{name} {dtype}: accuracy {100 * row['accuracy_mean']:.3f}% ({row['accuracy_loss_pt']:+.3f} pt vs "
                  f"float32), {r['bytes_per_template'][dtype]} bytes per template")
    print(f"results: {out / 'template_storage.json'}")
    return 0


def cmd_wider(args) -> int:
    from facegate.convert.datasets import wider_dir
    from facegate.convert.evaluate.wider import evaluate_wider
    images = Path(args.images) if args.images else wider_dir() / "images"
    gt = Path(args.gt) if args.gt else images.parent / "wider_face_val_bbx_gt.txt"
    mat_dir = Path(args.mat_dir) if args.mat_dir else gt.parent / "eval_tools"
    out = args.out or Path("runs") / "eval" / "wider"
    r = evaluate_wider(detector_from_args(args), images, gt, mat_dir, out, args.command_line, max_images=args.max_images,
                       progress=not args.no_progress, holdout_every=args.holdout_every)
    t = r["timing_640x480"]
    print(f"WIDER FACE ({r['images']} images) — {r['detector']}: AP easy {r['ap_easy']:.3f}, "
          f"medium {r['ap_medium']:.3f}, hard {r['ap_hard']:.3f}; 640x480 median {t['ms_median']} ms/frame")
    return 0


def cmd_lfw_detect(args) -> int:
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
    r = compare_detectors(paths, detector_from_args(args), reference, args.out or Path("runs") / "eval" / "lfw_detect",
                          args.command_line, progress=not args.no_progress)
    print(f"LFW ({r['images']} images) — {r['detector']}: detection rate {100 * r['detection_rate']:.2f}% "
          f"(reference {100 * r['reference_detection_rate']:.2f}%), landmark error vs {r['reference']} "
          f"{100 * r['landmark_error_iod_mean']:.2f}% of inter-ocular distance (median "
          f"{100 * r['landmark_error_iod_median']:.2f}%, p95 {100 * r['landmark_error_iod_p95']:.2f}%), "
          f"box IoU {r['box_iou_mean']}, {r['ms_per_image']} ms per image")
    return 0


def cmd_celebrity5(args) -> int:
    from facegate.convert.evaluate.celebrity5 import evaluate_celebrity5
    from facegate.convert.evaluate.faces import FaceFinder
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.registry import get_embedder

    root = Path(args.data) if args.data else celebrity5_dir()
    out = args.out or Path("runs") / "eval" / "celebrity5"
    finder = FaceFinder(detector_from_args(args), policy="largest", use_cache=not args.no_cache)
    r = evaluate_celebrity5(root, get_embedder(args.model, threads=args.threads), finder, out,
                            args.command_line, use_cache=not args.no_cache, progress=not args.no_progress)
    print(f"5-celebrity val — {r['model']}: linear SVM {100 * r['svm_accuracy']:.1f}%, "
          f"1-NN {100 * r['nn1_accuracy']:.1f}% ({r['val_images']} images)")
    return 0


def cmd_pad(args) -> int:
    import numpy as np

    from facegate.convert.evaluate import pad as pad_eval
    from facegate.convert.pad import scorers
    from facegate.convert.pad.data import boxes_cache, load_pad_folder

    data, weights = pad_data_paths(args.data, args.weights)
    samples = load_pad_folder(data)
    if args.max_images:                            # a quick run: every kind of sample, fewer of each
        keep = np.random.default_rng(0).choice(len(samples), min(args.max_images, len(samples)), replace=False)
        samples = [samples[i] for i in sorted(keep)]
    out = args.out or Path("runs") / "eval" / "pad"
    baselines = []
    if "minifasnet-pretrained" in args.baselines:
        baselines.append(scorers.minifasnet_pretrained(weights))
    if "expo-dtn" in args.baselines:
        baselines.append(scorers.expo_dtn(threads=args.threads))
    detector = detector_from_args(args)
    cache = boxes_cache(out, detector)
    if args.protocol == "leave-one-source-out":
        if len({s.source for s in samples}) < 2:
            raise DatasetError(f"{data}: leave-one-source-out needs at least two sources (the 'source' column)")
        r = pad_eval.evaluate_pad_loso(samples, weights, baselines, detector, out, data.name, args.command_line,
                                       args.epochs, args.bpcer, cfg=pad_recipe(args), cache=cache,
                                       progress=not args.no_progress)
        pct = pad_eval.pct
        for e in r["scorers"]:
            folds = ", ".join(f"{k} {pct(v['acer'])}" for k, v in e["folds"].items())
            print(f"{e['model']} ({e['threshold_source']}): mean ACER {pct(e['mean_acer'])} ({folds})")
        print(f"results: {out / 'pad_loso.json'}")
        return 0
    samples = pad_eval.select_split(samples, args.split)
    title = data.name + ("" if args.split == "all" else f" ({args.split} split, subject-disjoint)")
    r = pad_eval.evaluate_pad(samples, [scorers.shipped(args.set, threads=args.threads), *baselines], detector,
                              out, title, args.command_line, cache=cache,
                              progress=not args.no_progress)
    pct = pad_eval.pct
    for m in [r, *r["baselines"]]:
        print(f"{m['model']} at {m['threshold']:.3f} ({m['threshold_source']}): ACER {pct(m['acer'])}, "
              f"BPCER {pct(m['bpcer'])}, APCER worst {pct(m['apcer_worst'])}, AUC {m.get('auc', 'n/a')}")
    print(f"{r['images']} images, no face in {r['images_without_face']}; results: {out / 'pad.json'}")
    return 0


def _add_pair_tasks(evs) -> None:
    lfw = evs.add_parser("lfw", help="LFW View 2 10-fold verification")
    lfw.add_argument("--lfw-dir", default=None, help="folder with pairs.txt and images/ (default ../shared/datasets/lfw)")
    pairs = evs.add_parser("pairs", help="verification on any pairs file (LFW format or TSV)")
    pairs.add_argument("--pairs", required=True, type=Path)
    pairs.add_argument("--root", required=True, type=Path, help="folder the pair paths are relative to")
    for p in (lfw, pairs):
        add_eval_args(p)
        p.add_argument("--max-pairs", type=int, default=None, help="fold-balanced subset for quick runs")
        p.add_argument("--align", default=None, help="override the model card's alignment")
        p.add_argument("--probe-model", default=None, help="embed each pair's second image with this model "
                       "(gallery enrolled with --model, probed with another: compatibility)")
        p.set_defaults(func=cmd_verification)


def _add_templates(evs) -> None:
    t = evs.add_parser("templates", help="accuracy of float32 / float16 / int8 template storage on LFW and celeba_dev")
    add_eval_args(t)
    t.add_argument("--lfw-dir", default=None, help="folder with pairs.txt and images/ (default ../shared/datasets/lfw)")
    t.add_argument("--celeba", default=None, help="identity folders (default ../shared/datasets/celeba_dev/images)")
    t.add_argument("--no-celeba", action="store_true", help="LFW only")
    t.add_argument("--per-identity", type=int, default=10, help="images per celeba identity")
    t.add_argument("--max-pairs", type=int, default=None, help="fold-balanced subset of each pair set (quick runs)")
    t.add_argument("--pca", type=Path, action="append", default=[], help="also PCA-reduced templates with this "
                   "projection (`facegate calibrate pca`); repeatable")
    t.set_defaults(func=cmd_templates)


def _add_wider(evs) -> None:
    wider = evs.add_parser("wider", help="WIDER FACE easy/medium/hard AP and detector timing")
    wider.add_argument("--holdout-every", type=int, default=0,
                       help="only images with index %% N == 0 (those `distill detector` held out)")
    wider.add_argument("--images", default=None, help="WIDER images/ folder (default ../shared/datasets/wider_val_dev/images)")
    wider.add_argument("--gt", default=None, help="wider_face_val_bbx_gt.txt (default: beside images/)")
    wider.add_argument("--mat-dir", default=None, help="folder with wider_{easy,medium,hard}_val.mat "
                       "(default: eval_tools/ beside the gt file)")
    wider.add_argument("--max-images", type=int, default=None, help="first N images only (quick runs)")
    add_output_args(wider)
    add_detector_args(wider)
    wider.set_defaults(func=cmd_wider)


def _add_lfw_detect(evs) -> None:
    ld = evs.add_parser("lfw-detect", help="detector vs reference on LFW photos: detection rate, landmark error")
    ld.add_argument("--reference", default="mtcnn-teacher", help="reference detector set")
    ld.add_argument("--lfw-dir", default=None)
    ld.add_argument("--max-images", type=int, default=None, help="evenly spaced subset of the 7,701 pair images")
    add_output_args(ld)
    add_detector_args(ld)
    ld.set_defaults(func=cmd_lfw_detect)


def _add_celebrity5(evs) -> None:
    cel = evs.add_parser("celebrity5", help="5-celebrity faces: linear SVM and 1-NN on embeddings")
    cel.add_argument("--data", default=None, help="folder with train/ and val/ (default: from the teacher sdist)")
    add_eval_args(cel)
    cel.set_defaults(func=cmd_celebrity5)


def _add_pad(evs) -> None:
    pad = evs.add_parser("pad", help="presentation attack detection: APCER/BPCER/ACER, DET, baselines side by side")
    pad.add_argument("--data", type=Path, default=None, help="folder with labels.tsv, or live/ and spoof/[<attack type>/] "
                     "subfolders (default ../shared/datasets/pad_dev)")
    pad.add_argument("--protocol", default="card", choices=["card", "leave-one-source-out"],
                     help="card: each model at its own threshold; leave-one-source-out: fine-tune on the other "
                     "sources, test on each")
    pad.add_argument("--split", default="all", choices=["all", "val", "train"],
                     help="val: only pad_dev's subject-disjoint validation split (people the shipped set never saw)")
    pad.add_argument("--set", default=None, help="liveness set to measure (default minifasnet-fp16)")
    pad.add_argument("--baselines", nargs="*", default=["minifasnet-pretrained", "expo-dtn"],
                     choices=["minifasnet-pretrained", "expo-dtn"], help="baselines in the same run (none: empty)")
    pad.add_argument("--weights", type=Path, default=None,
                     help="MiniFASNet .pth folder (default ../shared/pretrained/minifasnet)")
    pad.add_argument("--epochs", type=int, default=8, help="leave-one-source-out fine-tuning epochs")
    pad.add_argument("--bpcer", type=float, default=0.05, help="leave-one-source-out thresholds keep this BPCER")
    add_pad_recipe_args(pad)
    pad.add_argument("--max-images", type=int, default=None, help="a random subset (quick runs)")
    add_output_args(pad)
    add_detector_args(pad)
    pad.set_defaults(func=cmd_pad)


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="measure models: lfw, pairs, templates, wider, lfw-detect, celebrity5, pad")
    evs = ev.add_subparsers(dest="eval_task", required=True)
    _add_pair_tasks(evs)
    _add_wider(evs)
    _add_templates(evs)
    _add_lfw_detect(evs)
    _add_celebrity5(evs)
    _add_pad(evs)
