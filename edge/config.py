"""Configuration is data: TOML files read into typed, frozen dataclasses by one strict loader.

Every section of every configuration file (the door's `door.toml`, a `[pipeline]` table, the sections a
board bundle writes) is a dataclass whose field types are its schema. :func:`load_section` refuses an
unknown key with the list of known ones (a typo must not silently disable a safety setting), refuses a
value of the wrong type (`"2"` for a number, `"no"` for a boolean, NaN or infinity anywhere) naming the
key, and then lets the dataclass check its own ranges in ``__post_init__``. :func:`dump_toml` writes the
same shapes back, so what a bundle writes is what the door reads.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from facegate.edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6 boards): the same parser from PyPI
    import tomli as tomllib

T = TypeVar("T")

__all__ = ["ConfigError", "dump_toml", "load_section", "read_toml", "within"]


def within(default: Any, low: float, high: float) -> Any:
    """A schema field whose value must lie in [low, high] (checked by :func:`load_section`, so a door never
    starts with `pulse_seconds = 1e12` or `port = 99999`): use it as the field's default."""
    return dataclasses.field(default=default, metadata={"range": (low, high)})


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file; ConfigError (exit 2) if it is missing or not TOML."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the configuration file (TOML) inside it")
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def load_section(cls: type[T], data: Any, where: str = "") -> T:
    """Build the dataclass `cls` from one TOML table, checking keys and types strictly.

    Nested dataclass fields are nested tables (`[door.policy]`). `where` names the table in messages
    ("" for a whole file, whose keys are its sections)."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table of settings, not {_kind(data)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(known))
    if unknown:
        what = f"{where} setting(s)" if where else "section(s)"
        raise ConfigError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {name: _checked(hints[name], value, where, name) for name, value in data.items()}
    for f in dataclasses.fields(cls):
        bounds, value = f.metadata.get("range"), values.get(f.name)
        if bounds and value is not None and not bounds[0] <= value <= bounds[1]:
            place = f"[{where}] {f.name}" if where else f.name
            raise ConfigError(f"{place} must be between {bounds[0]:g} and {bounds[1]:g}, not {value!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}]: {exc}" if where else str(exc)) from exc


def _checked(tp: Any, value: Any, where: str, key: str) -> Any:
    """`value` as the field type `tp` wants it, or ConfigError naming the key."""
    if dataclasses.is_dataclass(tp):
        return load_section(tp, value, f"{where}.{key}" if where else key)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for option in (a for a in args if a is not type(None)):
            try:
                return _checked(option, value, where, key)
            except ConfigError:
                continue
    elif tp is Any:
        return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple and isinstance(value, (list, tuple)):
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) == len(value):
            return tuple(_checked(t, v, where, key) for t, v in zip(items, value))
    elif origin in (list, dict) and isinstance(value, origin):
        return value
    raise ConfigError(f"[{where}] {key} must be {_describe(tp)}, not {_kind(value)} {value!r}" if where
                      else f"{key} must be {_describe(tp)}, not {_kind(value)} {value!r}")


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        return f"a list of {len(args)} numbers" if all(a is float for a in args) else "a list"
    return {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string in quotes",
            }.get(tp, getattr(tp, "__name__", str(tp)))


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "the string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def dump_toml(doc: dict[str, Any], header: str = "") -> str:
    """TOML text for nested dicts of plain values (tables become `[a]` / `[a.b]` headers; None is left out,
    TOML has no null)."""
    lines = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])

    def table(name: str, values: dict[str, Any]) -> None:
        plain = {k: v for k, v in values.items() if not isinstance(v, dict) and v is not None}
        if plain or not any(isinstance(v, dict) for v in values.values()):
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in plain.items())
            lines.append("")
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for name, values in doc.items():
        table(name, values)
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)
