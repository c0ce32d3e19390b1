"""Writes that survive a crash or a power cut: whole-file replacement and folder fsync, shared by the
gallery and the audit log's seal (one home for the ordering that makes them safe)."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: temporary files of atomic_write start with this; a writer may delete ones a dead process left
TMP_PREFIX = ".fg-tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new bytes, never a mix: a private
    temp file in the same folder, written and fsynced, renamed over `path`, then the folder fsynced."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
