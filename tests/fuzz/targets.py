"""Fuzz targets: one function per parser that reads bytes a door or a workstation did not write itself.

Each target takes the fuzzer's bytes and may only fail with the product's own error for that input
(GalleryError, AuditError, ModelError, ConfigError, ImageError): anything else (a KeyError, a
RecursionError, a numpy allocation error) escapes and is a finding. `tests/test_fuzz.py` replays the
committed seed corpus through every target and, where atheris is installed, fuzzes each for a short
budget; docs/fuzzing.md says how to run them for hours.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

#: the fixed key the gallery and audit seeds are written with (never a real door's)
FUZZ_KEY = bytes(range(32))
SEAL_MARK = b"\n\0SEAL\0\n"      # seed files of the audit target: log bytes, this mark, seal bytes
_WORK = Path(tempfile.mkdtemp(prefix="facegate-fuzz-"))


def _scratch(name: str, data: bytes) -> Path:
    path = _WORK / name
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def gallery(data: bytes) -> None:
    """A whole gallery file from the fuzzer (header, checksum, body) opened with the right key; and,
    with the first byte odd, the same bytes as the *body* of a correctly encrypted gallery, so body
    decoding is reached too (a real body is authenticated, but a decoder must never crash)."""
    from facegate.edge.errors import GalleryError
    from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
    from facegate.edge.gallery.fileformat import BODY_ERRORS, decode_body
    try:
        GalleryStore(_scratch("g.fgg", data), KeySource("raw", FUZZ_KEY)).load()
    except GalleryError:
        pass
    if data[:1] and data[0] & 1:
        binding = ModelBinding("fuzz", "5e" * 32, 4)
        for dtype, crops in (("float32", True), ("int8", False)):
            with contextlib.suppress(*BODY_ERRORS):    # what unpack() reports as GalleryCorruptError
                decode_body(data[1:], binding, dtype, crops)


def audit(data: bytes) -> None:
    """A log and its seal (split at SEAL_MARK): verified, then opened as the door would at start. With
    the first byte odd, every JSON object line and the seal are re-MACed with the key first, so the
    fuzzer gets past the MACs into the chain, seal and rotation logic."""
    from facegate.edge.door import audit as audit_module
    from facegate.edge.errors import AuditError
    log_bytes, _, seal_bytes = data.partition(SEAL_MARK)
    if data[:1] and data[0] & 1:
        log_bytes, seal_bytes = _remac(log_bytes[1:]), _remac(seal_bytes)
    folder = _WORK / "audit"
    if folder.exists():
        for f in folder.iterdir():
            f.unlink()
    folder.mkdir(exist_ok=True)
    log = folder / "audit.jsonl"
    log.write_bytes(log_bytes)
    if seal_bytes:
        audit_module.seal_path(log).write_bytes(seal_bytes)
    for f in folder.iterdir():
        os.chmod(f, 0o600)
    try:
        audit_module.parse_line(log_bytes.split(b"\n", 1)[0], "fuzz:1")
    except AuditError:
        pass
    try:
        audit_module.verify(log, key=FUZZ_KEY)
    except AuditError:
        pass
    try:
        audit_module.AuditLog(log, key=FUZZ_KEY, door_id="fuzz").append("started")
    except AuditError:
        pass


def _remac(blob: bytes) -> bytes:
    from facegate.edge.door.audit import _mac
    out = []
    for line in blob.split(b"\n"):
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            out.append(line)
            continue
        if isinstance(doc, dict):
            body = {k: v for k, v in doc.items() if k != "mac"}
            try:
                doc = {**body, "mac": _mac(FUZZ_KEY, body)}
                line = json.dumps(doc, sort_keys=True).encode()
            except (TypeError, ValueError, RecursionError):
                pass
        out.append(line)
    return b"\n".join(out)


def card(data: bytes) -> None:
    """A model card beside a model file: read and checked (sha256 verification off: the fuzzer cannot
    match it, and the checksum path is plain file hashing)."""
    from facegate.edge.cards import load_card
    from facegate.edge.errors import ModelError
    model = _scratch("m.tflite", b"model")
    _scratch("m.tflite.json", data)
    try:
        load_card(model, verify=False)
    except ModelError:
        pass


def config(data: bytes) -> None:
    """A door.toml: parsed and checked against the door's schema."""
    from facegate.edge.door.config import load_door_config
    from facegate.edge.errors import ConfigError
    try:
        load_door_config(_scratch("door.toml", data))
    except ConfigError:
        pass


def image(data: bytes) -> None:
    """An image file of any claimed size and format: refused or decoded within the pixel limits."""
    from facegate.edge.errors import ImageError
    from facegate.edge.images import load_rgb
    try:
        rgb = load_rgb(_scratch("photo.img", data), max_megapixels=4)
    except ImageError:
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] <= 4e6 * 1.01


TARGETS = {"gallery": gallery, "audit": audit, "card": card, "config": config, "image": image}
CORPUS = Path(__file__).parent / "corpus"
