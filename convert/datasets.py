"""Where the development datasets live: `../shared/datasets` beside the checkout, or
$FACEGATE_SHARED/datasets. They are read in place, never copied into the project."""
from __future__ import annotations

import os
from pathlib import Path


def shared_datasets() -> Path:
    return Path(os.environ.get("FACEGATE_SHARED", Path.cwd().parent / "shared")) / "datasets"


def lfw_dir() -> Path:
    return shared_datasets() / "lfw"


def wider_dir() -> Path:
    return shared_datasets() / "wider_val_dev"


def celeba_images() -> Path:
    return shared_datasets() / "celeba_dev" / "images"
