"""`facegate prune`: structured (channels) or magnitude pruning of a Keras embedder, then a short
distillation fine-tune to the unpruned model."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_prune(args) -> int:
    from facegate.convert.prune_run import run_prune
    path, s = run_prune(args.model, args.method, args.ratio, args.layers, args.data, args.images, args.steps,
                        args.batch_size, args.lr, args.out, command=args.command_line, progress=not args.no_progress)
    unit = "parameters" if s["method"] == "structured" else "non-zero weights"
    print(f"{path}: {s['params_before']:,} -> {s['params_after']:,} {unit}; "
          f"held-out cosine to the unpruned model {s['heldout_cosine_before']:.4f} -> {s['heldout_cosine_after']:.4f} "
          f"after {s['finetune_steps']} fine-tune steps ({s['finetune_seconds']} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
