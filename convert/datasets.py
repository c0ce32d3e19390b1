"""The one home of the development datasets' location: `$FACEGATE_SHARED/datasets`, else `shared/datasets`
beside the checkout (or beside the working directory for an installed copy). They are read in place,
never copied into the project; the tests, the benchmarks and every default `--data` path ask here."""
from __future__ import annotations

import os
from pathlib import Path

#: the checkout this module lives in (for an editable install; an installed wheel has no checkout)
_CHECKOUT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """The shared folder: $FACEGATE_SHARED, else `../shared` beside the checkout, else beside the cwd."""
    if os.environ.get("FACEGATE_SHARED"):
        return Path(os.environ["FACEGATE_SHARED"])
    beside_checkout = _CHECKOUT.parent / "shared"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd().parent / "shared"


def shared_datasets() -> Path:
    return shared_root() / "datasets"


def lfw_dir() -> Path:
    return shared_datasets() / "lfw"


def wider_dir() -> Path:
    return shared_datasets() / "wider_val_dev"


def celeba_images() -> Path:
    return shared_datasets() / "celeba_dev" / "images"
