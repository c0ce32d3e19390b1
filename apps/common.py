"""Argument helpers shared by the command groups: gallery key, pipeline, detector and evaluation options,
and output. Imports here stay light: `facegate --help` and every parser are built from them."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from facegate.edge.errors import KeyFileError, UsageError
from facegate.edge.gallery.keys import ENV_KEY, ENV_PASSPHRASE, KeySource
from facegate.edge.registry import DEFAULT_DETECTOR


def add_gallery_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--gallery", type=Path, required=required, help="encrypted gallery file")
    p.add_argument("--key-file", type=Path, default=None,
                   help=f"32-byte key file (mode 0600); default: ${ENV_KEY}, ${ENV_PASSPHRASE}, or a prompt")


def gallery_key(args, prompt: str = "Gallery passphrase: ", confirm: bool = False) -> KeySource:
    """Key from --key-file, the environment, or an interactive prompt (never a CLI argument:
    command lines are visible to every user of the machine)."""
    if getattr(args, "key_file", None):
        return KeySource.from_keyfile(args.key_file)
    if os.environ.get(ENV_KEY) or os.environ.get(ENV_PASSPHRASE):
        return KeySource.from_env()
    if sys.stdin is not None and sys.stdin.isatty():
        pw = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat passphrase: ") != pw:
            raise KeyFileError("the passphrases do not match")
        return KeySource.from_passphrase(pw)
    raise KeyFileError(f"no gallery key: pass --key-file, or set {ENV_KEY} (base64 key) or {ENV_PASSPHRASE}")


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="TOML file with a [pipeline] section")
    p.add_argument("--embedder", default=None, help="embedding model file with card (default: installed default)")
    p.add_argument("--detector-format", choices=["tflite", "onnx"], default=None)
    p.add_argument("--threads", type=int, default=None)


def pipeline_from_args(args, liveness: bool = False):
    """The pipeline the options describe; with `liveness`, the default liveness set as its stage."""
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig
    cfg = PipelineConfig.from_toml(args.config) if getattr(args, "config", None) else PipelineConfig()
    overrides = {k: v for k, v in (("embedder", args.embedder), ("detector_format", args.detector_format),
                                   ("threads", args.threads)) if v is not None}
    checker = None
    if liveness:
        from facegate.edge.registry import load_liveness
        checker = load_liveness(threads=cfg.threads if args.threads is None else args.threads)
    return Pipeline.from_config(cfg, liveness=checker, **overrides)


def emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")


def add_detector_args(p: argparse.ArgumentParser) -> None:
    """The MTCNN cascade's options (the detector set, file type, cascade settings, threads)."""
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
    p.add_argument("--max-faces", type=int, default=None, help="keep only the best N faces (the door keeps 1)")
    p.add_argument("--fast-path-min-face", type=float, default=None, metavar="PX",
                   help="look for faces this large first, full search only if none (the door uses 120)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: runtime's choice)")


def detector_from_args(args):
    """The cascade `add_detector_args` describes."""
    from facegate.edge.detect import CascadeConfig
    from facegate.edge.registry import load_detector
    return load_detector(args.detector, fmt=args.detector_format, threads=args.threads,
                         config=CascadeConfig(min_face_size=args.min_face,
                                              thresholds=tuple(args.thresholds) if args.thresholds else None,
                                              nms_mode=args.nms, chained_pyramid=args.chained_pyramid,
                                              scale_factor=args.pyramid_factor, max_faces=args.max_faces,
                                              fast_path_min_face=args.fast_path_min_face))


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/eval/<task>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_eval_args(p: argparse.ArgumentParser, model_default: str | None = "facenet-teacher") -> None:
    """Options of the evaluations that embed faces: the model, output, caching, and the detector."""
    p.add_argument("--model", default=model_default, help="registered model name or model file with card")
    p.add_argument("--no-cache", action="store_true", help="recompute detections and embeddings")
    add_output_args(p)
    add_detector_args(p)



def add_pad_recipe_args(p: argparse.ArgumentParser) -> None:
    """How the liveness nets are fine-tuned (`liveness train|crossval`, `eval pad --protocol ...`)."""
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default 1e-4)")
    p.add_argument("--train-layers", choices=["all", "head"], default="all",
                   help="fine-tune every layer, or only the last two dense layers")
    p.add_argument("--keep-pretrained", type=float, default=None, help="weight of the published nets' own "
                   "answer as a second target (learning without forgetting; default 0: off)")
    p.add_argument("--synthetic-attacks", type=float, default=None, metavar="SHARE",
                   help="share of live training views turned into a synthetic phone/tablet replay or print "
                   "of the same person (default 0: off)")
    p.add_argument("--activation", choices=["prelu", "relu"], default=None,
                   help="relu: replace the published PReLUs by ReLU before fine-tuning, for an int8 file that "
                   "runs entirely on LiteRT's fast path (default prelu)")


def pad_recipe(args):
    """The FinetuneConfig the options describe (its own defaults where an option is not given)."""
    from facegate.convert.pad.finetune import FinetuneConfig
    given = {"learning_rate": args.lr, "train_layers": args.train_layers, "keep_pretrained": args.keep_pretrained,
             "synthetic_attacks": args.synthetic_attacks, "activation": args.activation}
    if not 0 <= (args.synthetic_attacks or 0) <= 1:
        raise UsageError(f"--synthetic-attacks is a share between 0 and 1, not {args.synthetic_attacks}")
    return FinetuneConfig(**{k: v for k, v in given.items() if v is not None})


def parity_line(key: str, value: dict) -> str:
    """One exported liveness net against its Keras source, and the threshold its set's card carries."""
    own = f"; its set's own threshold {value['card_threshold']}" if "card_threshold" in value else ""
    return (f"{key}: max |live prob - Keras| {value['max_abs_diff']}, same decision "
            f"{value['decision_agreement']:.1%} of {value['n']} crops{own}")


def pad_data_paths(pad_dir: Path | None = None, weights: Path | None = None) -> tuple[Path, Path]:
    """pad_dev and the MiniFASNet weights: as given, else from ../shared (liveness train, eval pad, export)."""
    from facegate.convert.datasets import shared_datasets
    return (Path(pad_dir) if pad_dir else shared_datasets() / "pad_dev",
            Path(weights) if weights else shared_datasets().parent / "pretrained" / "minifasnet")
