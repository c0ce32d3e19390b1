"""The door's audit log: append-only JSON lines in a keyed chain, sealed at the tail.

Why each piece is there (each one closes a way to rewrite history that a plain SHA-256 chain allows):

* **Keyed chain.** Every entry carries ``mac = HMAC-SHA256(door key, entry)`` and the previous entry's mac
  in ``prev``. Someone who can edit the file but not read the door's key (``audit.key_file``, 32 random
  bytes, mode 0600, kept like the gallery key) cannot forge, edit or re-chain entries.
* **Genesis.** The first entry of a door's history is ``event = "genesis"`` with the door id and key id,
  so deleting the first lines is detected.
* **Seal.** After every append, ``<log>.seal`` (a small JSON file with its own mac) records the tail's
  sequence number and mac and the list of rotated files (the rotation manifest), written atomically and
  fsync'ed. Deleting the last lines, emptying the log or deleting a rotated file no longer verifies.
* **Crash safety.** An entry is fsync'ed before the seal moves, so after a power cut the log can only be
  *ahead* of the seal (by keyed, chained entries, which verify) or end in a torn line that was never
  sealed. On start the door moves such a torn line to ``<log>.torn-<time>``, records that it did, and
  starts; any other damage stops it (exit 13).
* **Strict parsing.** A line must be a UTF-8 JSON object without duplicate keys; anything else is an
  AuditError naming the file and line (exit 13), never a traceback.

Rotated files are named ``<log>.<first seq>`` (no renaming of older files on rotation); files beyond
``keep`` are recorded in the seal as pruned (their last seq and mac anchor the oldest kept file) before
they are deleted. Entries identify people only by their gallery id, never a name, embedding or image.
Files are created with mode 0600.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facegate.edge.durable import TMP_PREFIX, atomic_write, fsync_dir
from facegate.edge.errors import AuditError

log = logging.getLogger(__name__)

FORMAT = 2
GENESIS_PREV = "0" * 64
KEY_BYTES = 32
FORBIDDEN_KEYS = {"name", "embedding", "vector", "template", "image", "crop"}
RESERVED_KEYS = {"seq", "time", "event", "prev", "mac"}
_ROTATED = re.compile(r"\.(\d{1,19})$")


# -- keys ---------------------------------------------------------------------------------------
def default_key_path(log_path: str | Path) -> Path:
    """Where the door keeps its audit key unless `audit.key_file` says otherwise."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".key")


def read_key(path: str | Path) -> bytes:
    """The 32-byte audit key from a private key file (AuditError, exit 13, if unusable)."""
    path = Path(path)
    if path.is_dir():
        raise AuditError(f"audit key {path} is a directory, not a key file")
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise AuditError(f"audit key file not found: {path} (give --key-file; the door keeps it in "
                         "[audit] key_file)") from exc
    except OSError as exc:
        raise AuditError(f"cannot read the audit key {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise AuditError(f"audit key {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")
    if len(data) != KEY_BYTES:
        raise AuditError(f"audit key {path} must hold exactly {KEY_BYTES} bytes, found {len(data)}")
    return data


def create_key(path: str | Path) -> bytes:
    """Write a new random key (0600, fsynced); AuditError if the file exists (an existing key is never
    replaced: entries made with it could no longer be verified)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise AuditError(f"{path} already exists: an audit key is never overwritten") from exc
    except OSError as exc:
        raise AuditError(f"cannot create the audit key {path}: {exc.strerror}") from exc
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def load_or_create_key(path: str | Path) -> bytes:
    """The door's audit key, created (0600, random) the first time the door starts."""
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_key(path)
            log.info("created a new audit key %s (keep a copy: `audit verify` needs it)", path)
        except AuditError:
            if not path.exists():     # not a race with another process creating it: a real failure
                raise
    return read_key(path)


def key_id(key: bytes) -> str:
    """A public name for a key (first 16 hex digits of its SHA-256): safe to print and store."""
    return hashlib.sha256(b"facegate-audit-key-id" + key).hexdigest()[:16]


def _mac_matches(key: bytes, body: dict, claimed: object) -> bool:
    """Constant-time check of a claimed MAC of any type (a non-ASCII or non-string claim is just wrong)."""
    if not isinstance(claimed, str):
        return False
    return hmac.compare_digest(_mac(key, body).encode(), claimed.encode("utf-8", "surrogatepass"))


def _mac(key: bytes, body: dict) -> str:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


# -- strict parsing -----------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_line(raw: bytes, where: str) -> dict:
    """One audit line as a dict, or AuditError naming `where` (bad UTF-8, not JSON, not an object,
    duplicate keys, missing or mistyped chain fields)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditError(f"{where}: not UTF-8 text (byte {exc.start}): the line was edited or damaged") from exc
    try:
        entry = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:   # bad JSON, a duplicate key, absurd nesting
        raise AuditError(f"{where}: not a valid audit entry ({exc})") from exc
    if not isinstance(entry, dict):
        raise AuditError(f"{where}: not an audit entry (a JSON {type(entry).__name__}, not an object)")
    seq = entry.get("seq")
    if type(seq) is not int or seq < 1:
        raise AuditError(f"{where}: entry has no valid sequence number")
    for name in ("prev", "mac", "event", "time"):
        if not isinstance(entry.get(name), str):
            raise AuditError(f"{where}: entry has no valid {name!r} field")
    return entry


def read_lines(path: Path) -> tuple[list[bytes], bytes]:
    """Complete lines and the trailing bytes after the last newline (a torn write, normally empty)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror}") from exc
    if not data:
        return [], b""
    complete, _, tail = data.rpartition(b"\n")
    return (complete.split(b"\n") if complete or data.startswith(b"\n") else []), tail


# -- the seal (tail + rotation manifest) --------------------------------------------------------
@dataclass
class Seal:
    """What the log must at least contain: the tail, the rotated files, and where pruned history ended."""

    door: str
    key_id: str
    tail_seq: int = 0
    tail_mac: str = GENESIS_PREV
    segments: list[dict] = field(default_factory=list)   # rotated files, oldest first: first, last, mac
    pruned_seq: int = 0
    pruned_mac: str = GENESIS_PREV

    def body(self) -> dict:
        return {"format": FORMAT, "door": self.door, "key_id": self.key_id, "tail": {"seq": self.tail_seq,
                "mac": self.tail_mac}, "segments": self.segments,
                "pruned": {"seq": self.pruned_seq, "mac": self.pruned_mac}}

    def dump(self, key: bytes) -> bytes:
        body = self.body()
        return (json.dumps({**body, "mac": _mac(key, body)}, sort_keys=True) + "\n").encode()

    @classmethod
    def load(cls, path: Path, key: bytes) -> "Seal":
        if not path.exists():
            raise AuditError(f"the audit seal {path.name} is missing: the log's tail cannot be checked "
                             "(deleted, or not a facegate audit log)")
        doc = parse_seal(path.read_bytes(), path.name)
        body = {k: v for k, v in doc.items() if k != "mac"}
        if not _mac_matches(key, body, doc.get("mac")):
            raise AuditError(f"{path.name}: the seal was modified or made with another key")
        try:
            seal = cls(door=body["door"], key_id=body["key_id"], tail_seq=body["tail"]["seq"],
                       tail_mac=body["tail"]["mac"], segments=[dict(s) for s in body["segments"]],
                       pruned_seq=body["pruned"]["seq"], pruned_mac=body["pruned"]["mac"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"{path.name}: the seal is missing fields") from exc
        seqs = [seal.tail_seq, seal.pruned_seq] + [v for seg in seal.segments for v in (seg.get("first"), seg.get("last"))]
        texts = [seal.door, seal.key_id, seal.tail_mac, seal.pruned_mac] + [seg.get("mac") for seg in seal.segments]
        if not all(type(v) is int and v >= 0 for v in seqs) or not all(isinstance(v, str) for v in texts):
            raise AuditError(f"{path.name}: the seal's fields have the wrong types")
        return seal


def parse_seal(raw: bytes, where: str) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AuditError(f"{where}: the seal is damaged ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AuditError(f"{where}: not a facegate audit seal (format {FORMAT})")
    return doc


def seal_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".seal")


def rotated_files(log_path: Path) -> dict[int, Path]:
    """Rotated files of a log by their first sequence number."""
    out = {}
    for p in log_path.parent.glob(log_path.name + ".*"):
        m = _ROTATED.search(p.name)
        if m and p.name == f"{log_path.name}.{m.group(1)}":
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


# -- the writer ---------------------------------------------------------------------------------
class AuditLog:
    """The door's writer. Opening it checks the tail against the seal (and recovers a torn last line);
    `append` makes an entry durable (log fsync'ed, then seal) before it returns."""

    def __init__(self, path: str | Path, key: bytes | None = None, door_id: str | None = None,
                 max_bytes: int = 10 * 1024 * 1024, keep: int = 10, key_file: str | Path | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        # the door writes from its loop and from the status server's threads: one entry at a time, or two
        # entries would take the same sequence number and link
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key if key is not None else load_or_create_key(key_file or default_key_path(self.path))
        self.door_id = door_id or socket.gethostname()
        self.seal_file = seal_path(self.path)
        self.recovered: str | None = None
        for stale in self.path.parent.glob(f"{TMP_PREFIX}{self.seal_file.name}.*"):   # a seal write cut short
            stale.unlink(missing_ok=True)
        if not self.seal_file.exists():
            self._start_new_chain()
        else:
            self.seal = Seal.load(self.seal_file, self.key)
            if self.seal.key_id != key_id(self.key):
                raise AuditError(f"{self.seal_file.name}: this log belongs to audit key {self.seal.key_id}, "
                                 f"not the configured one ({key_id(self.key)})")
            self._open_tail()

    # -- start-up -------------------------------------------------------------------------------
    def _start_new_chain(self) -> None:
        leftovers = [p for p in [self.path, *rotated_files(self.path).values()] if p.exists() and p.stat().st_size]
        if leftovers:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            for p in leftovers:
                os.replace(p, p.with_name(f"{p.name}.unsealed-{stamp}"))
            log.warning("audit log %s had no seal (an older unkeyed log or a deleted seal); kept aside as "
                        "*.unsealed-%s, a new chain starts", self.path, stamp)
        self.seal = Seal(door=self.door_id, key_id=key_id(self.key))
        self._seq, self._prev, self._first_seq = 0, GENESIS_PREV, 1
        self.append("genesis", door=self.door_id, key_id=key_id(self.key), format=FORMAT,
                    **({"set_aside": [p.name for p in leftovers]} if leftovers else {}))

    def _open_tail(self) -> None:
        """Find the last entry, quarantine a torn unsealed last line, and check nothing sealed is gone."""
        seal = self.seal
        known = {int(s["first"]) for s in seal.segments}
        for first, p in rotated_files(self.path).items():   # rotated just before a crash: adopt it
            if first not in known and first > max(known | {seal.pruned_seq}):
                last = self._last_entry(p)
                if last is not None:
                    seal.segments.append({"first": first, "last": last["seq"], "mac": last["mac"]})
        for s in seal.segments:
            if not rotated_files(self.path).get(int(s["first"])):
                raise AuditError(f"audit file {self.path.name}.{s['first']} listed in the seal is missing: "
                                 "history was deleted; run `facegate audit verify`")
        for first, p in rotated_files(self.path).items():   # pruned but not yet deleted before a crash
            if first <= seal.pruned_seq and all(int(s["first"]) != first for s in seal.segments):
                p.unlink()
        last = self._last_entry(self.path, recover=True) if self.path.exists() else None
        if last is None and seal.segments:
            last = self._last_entry(rotated_files(self.path)[int(seal.segments[-1]["first"])])
        if last is None:
            if seal.tail_seq:
                raise AuditError(f"{self.path.name} is empty or missing but the seal records {seal.tail_seq} "
                                 "entries: the log was truncated or deleted; run `facegate audit verify`")
            self._seq, self._prev, self._first_seq = 0, GENESIS_PREV, 1
        else:
            if last["seq"] < seal.tail_seq:
                raise AuditError(f"{self.path.name} ends at entry {last['seq']} but the seal records "
                                 f"{seal.tail_seq}: entries were deleted; run `facegate audit verify`")
            self._seq, self._prev = last["seq"], last["mac"]
            self._first_seq = self._first_seq_of_current()
        if self.recovered:
            self.append("recovered", reason=self.recovered)

    def _first_seq_of_current(self) -> int:
        lines, _ = read_lines(self.path) if self.path.exists() else ([], b"")
        return parse_line(lines[0], f"{self.path.name}:1")["seq"] if lines else self._seq + 1

    def _last_entry(self, path: Path, recover: bool = False) -> dict | None:
        lines, torn = read_lines(path)
        bad: bytes | None = torn or None
        entry = None
        while lines:
            try:
                entry = parse_line(lines[-1], f"{path.name}:{len(lines)}")
                if not _mac_matches(self.key, _unmac(entry), entry["mac"]):
                    raise AuditError(f"{path.name}:{len(lines)}: entry fails its mac")
                break
            except AuditError:
                if not recover or bad is not None or entry is not None:
                    raise
                bad, entry = lines.pop() + b"\n", None   # a last complete line that is damaged: torn too
        if bad is not None:
            if not recover:
                raise AuditError(f"{path.name} ends with an incomplete line")
            if entry is not None and entry["seq"] < self.seal.tail_seq:
                raise AuditError(f"{path.name}: a damaged line at the end and the seal records more "
                                 "entries: run `facegate audit verify`")
            self._quarantine(path, lines, bad)
        return entry

    def _quarantine(self, path: Path, good: list[bytes], bad: bytes) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        q = path.with_name(f"{path.name}.torn-{stamp}")
        fd = os.open(q, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bad)
            fh.flush()
            os.fsync(fh.fileno())
        keep = sum(len(line) + 1 for line in good)
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(path.parent)
        self.recovered = f"torn last line ({len(bad)} bytes, unsealed) moved to {q.name}"
        log.warning("audit log %s: %s", path, self.recovered)

    # -- writing --------------------------------------------------------------------------------
    def _rotate(self) -> None:
        last_seq, last_mac = self._seq, self._prev
        os.replace(self.path, self.path.with_name(f"{self.path.name}.{self._first_seq}"))
        self.seal.segments.append({"first": self._first_seq, "last": last_seq, "mac": last_mac})
        doomed = []
        while len(self.seal.segments) > self.keep:
            oldest = self.seal.segments.pop(0)
            self.seal.pruned_seq, self.seal.pruned_mac = int(oldest["last"]), str(oldest["mac"])
            doomed.append(self.path.with_name(f"{self.path.name}.{oldest['first']}"))
        atomic_write(self.seal_file, self.seal.dump(self.key))   # record the pruning, then delete
        for p in doomed:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self._first_seq = self._seq + 1

    def append(self, event: str, **fields: Any) -> dict:
        """Write one entry durably (fsync'ed) and move the seal; raises OSError (disk full, read-only)
        or AuditError, in which case nothing was recorded and the caller must not act on it. Safe to call
        from several threads."""
        bad = FORBIDDEN_KEYS & set(fields)
        if bad:
            raise AuditError(f"audit entries must not hold {', '.join(sorted(bad))} (personal/biometric data)")
        if RESERVED_KEYS & set(fields):
            raise AuditError(f"audit fields {sorted(RESERVED_KEYS & set(fields))} are reserved")
        with self._lock:
            return self._append(event, fields)

    def _append(self, event: str, fields: dict) -> dict:
        if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
            self._rotate()
        entry = {"seq": self._seq + 1, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "event": event, **fields, "prev": self._prev}
        entry["mac"] = _mac(self.key, entry)
        line = (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(28, "short write (disk full?)")
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):   # leave no partial line behind if we can help it
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        self._seq, self._prev = entry["seq"], entry["mac"]
        self.seal.tail_seq, self.seal.tail_mac = self._seq, self._prev
        atomic_write(self.seal_file, self.seal.dump(self.key))
        return entry


def _unmac(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "mac"}


# -- verification -------------------------------------------------------------------------------
def verify(path: str | Path, key: bytes | None = None, key_file: str | Path | None = None) -> dict:
    """Check a door's whole history: every file the seal lists is present, every entry's mac and chain
    link, the genesis (or the pruned anchor) at the head, and the sealed tail at the end. Raises
    AuditError naming the file and line at the first problem."""
    path = Path(path)
    if path.is_dir():
        raise AuditError(f"{path} is a directory, not an audit log")
    key = key if key is not None else read_key(key_file or default_key_path(path))
    seal = Seal.load(seal_path(path), key)
    if seal.key_id != key_id(key):
        raise AuditError(f"{seal_path(path).name}: sealed with audit key {seal.key_id}, not {key_id(key)}")
    rotated = {first: p for first, p in rotated_files(path).items() if first > seal.pruned_seq}
    for s in seal.segments:
        if int(s["first"]) not in rotated:
            raise AuditError(f"{path.name}.{s['first']} is missing (the seal lists it): history was deleted")
    files = list(rotated.values()) + ([path] if path.exists() else [])
    prev, seq = seal.pruned_mac, seal.pruned_seq
    count, sealed_seen, set_aside = 0, False, []
    last_of: dict[Path, tuple[int, str]] = {}
    for f in files:
        lines, torn = read_lines(f)
        if torn:
            raise AuditError(f"{f.name}:{len(lines) + 1}: incomplete last line (a torn write); the door "
                             "quarantines it when it starts")
        expected_first = _ROTATED.search(f.name) if f is not path else None
        for lineno, raw in enumerate(lines, start=1):
            where = f"{f.name}:{lineno}"
            e = parse_line(raw, where)
            if not _mac_matches(key, _unmac(e), e["mac"]):
                raise AuditError(f"{where}: entry was modified or forged (mac mismatch)")
            if e["seq"] != seq + 1:
                raise AuditError(f"{where}: sequence jumps from {seq} to {e['seq']} (entries deleted or inserted)")
            if e["prev"] != prev:
                raise AuditError(f"{where}: chain broken (an entry before it was deleted or reordered)")
            if lineno == 1 and expected_first and e["seq"] != int(expected_first.group(1)):
                raise AuditError(f"{where}: file name says it starts at {expected_first.group(1)}, it starts at {e['seq']}")
            if e["seq"] == 1:
                set_aside = e.get("set_aside") or []
            if e["seq"] == 1 and (e["event"] != "genesis" or e.get("key_id") != seal.key_id):
                raise AuditError(f"{where}: the history does not start with this door's genesis entry "
                                 "(its first entries were deleted or replaced)")
            if e["seq"] == seal.tail_seq:
                if e["mac"] != seal.tail_mac:
                    raise AuditError(f"{where}: not the entry the seal recorded")
                sealed_seen = True
            prev, seq, count = e["mac"], e["seq"], count + 1
        if lines:
            last_of[f] = (seq, prev)
    for s in seal.segments:
        f = rotated[int(s["first"])]
        if last_of.get(f) != (int(s["last"]), str(s["mac"])):
            raise AuditError(f"{f.name}: does not end where the seal's manifest says (entries cut from it)")
    if seq < seal.tail_seq or (seal.tail_seq and not sealed_seen):
        raise AuditError(f"{path.name}: the log ends at entry {seq} but the seal records {seal.tail_seq}: "
                         "its last entries were deleted (or the file emptied)")
    return {"entries": count, "files": [f.name for f in files], "last_seq": seq, "door": seal.door,
            "key_id": seal.key_id, "unsealed": seq - seal.tail_seq, "pruned_before": seal.pruned_seq + 1,
            "set_aside": set_aside}
