"""A door's outbox: the audit entries its site has not confirmed yet.

The door's audit log already is a durable, fsync'ed, ordered queue with sequence numbers, so the outbox
keeps only one number beside it: the highest sequence the *site* confirmed it stored (``acked``, written
atomically). Everything after it is sent again after a restart, a broker outage or a lost answer; the
site deduplicates by door and sequence, so its view has every event exactly once. Nothing is deleted
here: the audit log's own rotation decides what is kept, and a rotation that pruned entries the site
never confirmed is reported (the site sees the gap in the chain, too).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from facegate.edge.door.audit import parse_line, parse_seal, read_lines, rotated_files, seal_path
from facegate.edge.durable import atomic_write
from facegate.edge.errors import AuditError

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, audit_path: str | Path, state_path: str | Path) -> None:
        self.audit_path = Path(audit_path)
        self.state_path = Path(state_path)
        self.acked = self._load_acked()

    def _load_acked(self) -> int:
        try:
            value = json.loads(self.state_path.read_text())["acked"]
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"{self.state_path}: the outbox state is damaged ({exc}); remove it to send the whole "
                             "audit log again (the site ignores what it already has)") from exc
        if type(value) is not int or value < 0:
            raise AuditError(f"{self.state_path}: the outbox state is damaged")
        return value

    def tail_seq(self) -> int:
        """The last sequence number the audit log holds (from its seal: no need to read the log)."""
        seal = seal_path(self.audit_path)
        try:
            return int(parse_seal(seal.read_bytes(), seal.name)["tail"]["seq"])
        except FileNotFoundError:
            return 0

    def pending(self, limit: int = 500) -> list[dict]:
        """Up to `limit` entries after the confirmed one, oldest first."""
        if self.tail_seq() <= self.acked:
            return []
        files = list(rotated_files(self.audit_path).items())
        out: list[dict] = []
        for i, (_, path) in enumerate(files):
            following = files[i + 1][0] if i + 1 < len(files) else None
            if following is not None and following <= self.acked + 1:
                continue                       # every entry of this file is confirmed
            out += self._entries(path, limit - len(out))
            if len(out) >= limit:
                return out
        if self.audit_path.exists():
            out += self._entries(self.audit_path, limit - len(out))
        return out

    def _entries(self, path: Path, limit: int) -> list[dict]:
        lines, _torn = read_lines(path)       # a torn last line is never sent: it was never sealed
        out = []
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            entry = parse_line(raw, f"{path.name}:{lineno}")
            if entry["seq"] > self.acked:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    def ack(self, seq: int) -> None:
        """The site stored everything up to `seq`: never send those again."""
        if seq > self.acked:
            atomic_write(self.state_path, json.dumps({"acked": seq}).encode())
            self.acked = seq
