"""Append-only, hash-chained audit log (JSON lines) for door events.

Each entry carries the SHA-256 of the previous entry, so editing, inserting or deleting any line
breaks the chain from there on; `verify` names the first bad line. Entries identify people only by
their gallery id — never a name, an embedding or an image. Every append is flushed and fsync'ed
(door events are rare; losing one on a power cut is worse than the cost). Rotation renames the full
file to `<log>.1` (shifting older ones) and the new file's first entry chains to the last hash of the
rotated one, so `verify` checks the whole history in order.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from facegate.edge.errors import AuditError

GENESIS = "0" * 64
FORBIDDEN_KEYS = {"name", "embedding", "vector", "template", "image", "crop"}



def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class AuditLog:
    def __init__(self, path: str | Path, max_bytes: int = 10 * 1024 * 1024, keep: int = 10) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last_hash, self._seq = self._tail()

    def _tail(self) -> tuple[str, int]:
        for p in [self.path] + [self._rotated(i) for i in range(1, self.keep + 1)]:
            if p.exists() and p.stat().st_size:
                last = p.read_text().rstrip("\n").splitlines()[-1]
                try:
                    e = json.loads(last)
                    return e["hash"], int(e["seq"])
                except (json.JSONDecodeError, KeyError) as exc:
                    raise AuditError(f"audit log {p} ends with a damaged line; run `facegate audit verify`") from exc
        return GENESIS, 0

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _rotate(self) -> None:
        oldest = self._rotated(self.keep)
        if oldest.exists():
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            if self._rotated(i).exists():
                os.replace(self._rotated(i), self._rotated(i + 1))
        os.replace(self.path, self._rotated(1))

    def append(self, event: str, **fields: Any) -> dict:
        bad = FORBIDDEN_KEYS & set(fields)
        if bad:
            raise AuditError(f"audit entries must not hold {', '.join(sorted(bad))} (personal/biometric data)")
        if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
            self._rotate()
        self._seq += 1
        entry = {"seq": self._seq, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "event": event, **fields, "prev": self._last_hash}
        entry["hash"] = _digest(entry)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._last_hash = entry["hash"]
        return entry


def verify(path: str | Path, keep: int = 10) -> dict:
    """Check the chain across rotated files (oldest first). Raises AuditError at the first break."""
    path = Path(path)
    files = [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)]
    files = [f for f in files if f.exists()] + ([path] if path.exists() else [])
    if not files:
        raise AuditError(f"audit log not found: {path}")
    prev, seq, count = None, None, 0
    for f in files:
        for lineno, line in enumerate(f.read_text().splitlines(), start=1):
            where = f"{f.name}:{lineno}"
            try:
                e = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AuditError(f"{where}: not a JSON entry (edited or truncated)") from exc
            if _digest(e) != e.get("hash"):
                raise AuditError(f"{where}: entry was modified (hash mismatch)")
            if prev is not None and e.get("prev") != prev:
                raise AuditError(f"{where}: chain broken — an entry before it was deleted or reordered")
            if seq is not None and e.get("seq") != seq + 1:
                raise AuditError(f"{where}: sequence jumps from {seq} to {e.get('seq')} (entries deleted)")
            prev, seq, count = e["hash"], e["seq"], count + 1
    return {"entries": count, "files": [f.name for f in files], "last_seq": seq}
