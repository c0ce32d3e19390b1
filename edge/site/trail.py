"""The admin trail: who enrolled, renamed, removed, unlocked or created what, as a tamper-evident log.

It is the door's audit log format (:class:`~facegate.edge.door.audit.AuditLog`: keyed HMAC chain,
genesis entry, seal, fsync before returning), kept in the site folder with its own key, so
``facegate audit verify SITE/trail/admin.log`` checks it like a door's log. Entries name the acting
account and the record's id (a person's site id, never their name or face).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from facegate.edge.door.audit import AuditLog, verify

TRAIL_FILE = Path("trail") / "admin.log"


class AdminTrail:
    """Appends (one writer at a time) and reads back the site's admin trail."""

    def __init__(self, site_dir: Path, site_id: str) -> None:
        self.path = Path(site_dir) / TRAIL_FILE
        self._lock = threading.Lock()
        self._log = AuditLog(self.path, door_id=f"site:{site_id}")

    def record(self, actor: str, what: str, **fields) -> dict:
        """Durably append one action (raises if it cannot be written: the caller must not go on)."""
        with self._lock:
            return self._log.append(what, actor=actor, **fields)

    def recent(self, limit: int = 200) -> list[dict]:
        """The newest entries of the current file, newest first."""
        with self._lock:
            try:
                lines = self.path.read_bytes().splitlines()
            except FileNotFoundError:
                return []
        out = []
        for raw in reversed(lines[-limit:]):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def check(self) -> dict:
        """`audit verify` on the trail: entries, key id; raises AuditError if it was edited."""
        with self._lock:
            return verify(self.path, key=self._log.key)
