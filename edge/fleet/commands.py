"""Remote commands from the site to one door: unlock now, lockdown / release, change liveness mode.

The site signs each command with its Ed25519 key; it names its site and door, carries a random id and
an expiry (:data:`TTL_S` after it was issued). The door accepts it only if the signature verifies with
the key it pinned at registration, it is addressed to this door of this site, it has not expired (and
was not issued in the future beyond :data:`CLOCK_SKEW_S`) and its id was never seen (ids are kept until
they expire, so a replay is always caught). The sync agent only drops what arrives into the door's
spool folder; the door loop verifies, applies and audits (the audit log has one writer), so a local
process writing into the spool can forge nothing either.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from facegate.edge.durable import atomic_write
from facegate.edge.errors import SiteRequestError

log = logging.getLogger(__name__)

ACTIONS = ("unlock", "lockdown", "release", "liveness")
LIVENESS_MODES = ("passive", "challenge")
TTL_S = 60.0
CLOCK_SKEW_S = 30.0
MAX_SPOOL = 100


class CommandRefused(Exception):
    """A command the door must not act on; the message says why (it goes into the audit log)."""


def _payload(command: dict) -> bytes:
    return json.dumps({k: v for k, v in command.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":")).encode()


def make(key: Ed25519PrivateKey, site: str, door: str, action: str, actor: str, mode: str | None = None,
         ttl_s: float = TTL_S, now: float | None = None) -> dict:
    """A signed command (the site's side)."""
    if action not in ACTIONS:
        raise SiteRequestError(f"unknown command {action!r}; one of {', '.join(ACTIONS)}", 422)
    if action == "liveness" and mode not in LIVENESS_MODES:
        raise SiteRequestError(f"liveness mode must be one of {', '.join(LIVENESS_MODES)}", 422)
    t = time.time() if now is None else now
    command = {"id": secrets.token_hex(16), "site": site, "door": door, "action": action, "actor": actor,
               "issued": round(t, 3), "expires": round(t + ttl_s, 3)}
    if action == "liveness":
        command["mode"] = mode
    command["signature"] = base64.b64encode(key.sign(_payload(command))).decode()
    return command


def verify(command: dict, public_key: str, site: str, door: str, seen: dict[str, float],
           now: float | None = None) -> dict:
    """The command if this door may act on it; CommandRefused otherwise. Records its id in `seen`."""
    t = time.time() if now is None else now
    if not isinstance(command, dict):
        raise CommandRefused("not a command object")
    try:
        signature = base64.b64decode(command["signature"], validate=True)
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(signature, _payload(command))
    except (KeyError, TypeError, ValueError, InvalidSignature) as exc:
        raise CommandRefused("bad or missing signature: not from this door's site") from exc
    if command.get("site") != site or command.get("door") != door:
        raise CommandRefused(f"addressed to door {command.get('door')} of site {command.get('site')}, not to this door")
    issued, expires = command.get("issued"), command.get("expires")
    if not isinstance(issued, (int, float)) or not isinstance(expires, (int, float)):
        raise CommandRefused("no issue or expiry time")
    if expires < t:
        raise CommandRefused(f"expired {t - expires:.0f} s ago")
    if issued > t + CLOCK_SKEW_S or expires - issued > 10 * TTL_S:
        raise CommandRefused("issued in the future or valid for too long (clock or forgery)")
    command_id = command.get("id")
    if not isinstance(command_id, str) or not command_id:
        raise CommandRefused("no command id")
    if command_id in seen:
        raise CommandRefused("replayed: this command was already received")
    if command.get("action") not in ACTIONS or (command["action"] == "liveness" and command.get("mode") not in LIVENESS_MODES):
        raise CommandRefused(f"unknown command {command.get('action')!r}")
    seen[command_id] = float(expires)
    return command


class CommandSpool:
    """The folder between the sync agent (drops) and the door loop (takes): one file per command."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.seen_file = self.folder.parent / "commands-seen.json"

    def drop(self, raw: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if len(os.listdir(self.folder)) >= MAX_SPOOL:
            log.warning("command spool full (%d): dropped a command", MAX_SPOOL)
            return
        atomic_write(self.folder / f"{time.time_ns():020d}-{secrets.token_hex(4)}.json", raw[:16384])

    def take(self) -> list[tuple[Path, bytes]]:
        """Spooled commands, oldest first (the caller deletes each once handled)."""
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                out.append((self.folder / name, (self.folder / name).read_bytes()))
            except OSError:
                continue
        return out

    def load_seen(self, now: float | None = None) -> dict[str, float]:
        t = time.time() if now is None else now
        try:
            seen = json.loads(self.seen_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: float(v) for k, v in seen.items() if isinstance(v, (int, float)) and v >= t - CLOCK_SKEW_S}

    def save_seen(self, seen: dict[str, float]) -> None:
        self.seen_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.seen_file, json.dumps(seen).encode())
