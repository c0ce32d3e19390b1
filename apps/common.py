"""Argument helpers shared by the app modules: gallery key options, pipeline options, output."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from facegate.edge.errors import KeyFileError
from facegate.edge.gallery.keys import ENV_KEY, ENV_PASSPHRASE, KeySource

#: exit codes for decisions, so scripts can branch on them
EXIT_RETRY = 10
EXIT_REJECT = 11


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


def pipeline_from_args(args):
    from facegate.edge.pipeline import Pipeline, PipelineConfig
    cfg = PipelineConfig.from_toml(args.config) if getattr(args, "config", None) else PipelineConfig()
    overrides = {k: v for k, v in (("embedder", args.embedder), ("detector_format", args.detector_format),
                                   ("threads", args.threads)) if v is not None}
    return Pipeline.from_config(cfg, **overrides)


def emit(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")
