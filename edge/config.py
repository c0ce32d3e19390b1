"""Reading configuration files: configuration is data (TOML), checked strictly, with errors that
say which file and what is wrong."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from facegate.edge.errors import FacegateError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6 boards): the same parser from PyPI
    import tomli as tomllib


class ConfigError(FacegateError):
    """The configuration file has an unknown key or a value of the wrong kind."""

    exit_code = 2


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
