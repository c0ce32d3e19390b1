"""Gallery snapshots: what a site sends a door group, signed so a door can tell it came from its site.

A snapshot is an ordinary encrypted gallery file (the door opens it with the site's gallery key, which
it received at registration) plus a **manifest**: site id, door group, version, the file's SHA-256 and
size, the model binding, signed with the site's Ed25519 key. The manifest travels on the group's
retained MQTT topic; the file comes over HTTPS. A door accepts a snapshot only if

* the signature verifies with the site key it pinned at registration,
* the manifest names its own site and group (another site's file is refused even when validly signed),
* the version is higher than the one it holds (no rollback to a snapshot where an erased person is back),
* the file has the manifest's SHA-256 and size and opens with the gallery key for the door's model,

and then swaps it in with an atomic rename: after a crash the door has the old file or the new one.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from facegate.edge.errors import GalleryError, SiteError
from facegate.edge.gallery.fileformat import pack, unpack
from facegate.edge.gallery.records import Gallery, ModelBinding

MANIFEST_FORMAT = 1
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024


class SnapshotRefused(GalleryError):
    """A snapshot that must not replace the door's gallery (unsigned, altered, stale, another site's)."""


@dataclass(frozen=True)
class Manifest:
    site: str
    group: str
    version: int
    sha256: str
    size: int
    model_sha256: str
    created: float

    def payload(self) -> bytes:
        return json.dumps({"format": MANIFEST_FORMAT, **asdict(self)}, sort_keys=True, separators=(",", ":")).encode()


def new_signing_key(path: Path) -> None:
    """A new Ed25519 private key (raw 32 bytes, 0600); never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Ed25519PrivateKey.generate().private_bytes_raw())
        fh.flush()
        os.fsync(fh.fileno())


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    data = Path(path).read_bytes()
    if len(data) != 32:
        raise SiteError(f"{path} is not a facegate signing key (32 bytes)")
    return Ed25519PrivateKey.from_private_bytes(data)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def build(gallery: Gallery, gallery_key: bytes, signing_key: Ed25519PrivateKey, site: str, group: str,
          version: int) -> tuple[bytes, dict]:
    """(snapshot file bytes, signed announcement) for one door group at `version`."""
    blob = pack(gallery, {"type": "raw"}, gallery_key, version)
    manifest = Manifest(site, group, int(version), hashlib.sha256(blob).hexdigest(), len(blob),
                        gallery.binding.sha256, round(time.time(), 3))
    signature = base64.b64encode(signing_key.sign(manifest.payload())).decode()
    return blob, {**asdict(manifest), "signature": signature}


def verify_announcement(announcement: dict, site_public_key: str, site: str, group: str, current_version: int) -> Manifest:
    """The manifest of a valid, newer announcement for this door; SnapshotRefused (saying why) otherwise."""
    if not isinstance(announcement, dict):
        raise SnapshotRefused("the announcement is not a JSON object")
    try:
        manifest = Manifest(**{k: announcement[k] for k in Manifest.__dataclass_fields__})
        signature = base64.b64decode(announcement["signature"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotRefused(f"the announcement is incomplete or malformed ({exc})") from exc
    if type(manifest.version) is not int or type(manifest.size) is not int:
        raise SnapshotRefused("the announcement's version and size must be integers")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(site_public_key)).verify(signature, manifest.payload())
    except (InvalidSignature, ValueError) as exc:
        raise SnapshotRefused("the snapshot's signature does not verify with this site's key: unsigned, altered or "
                              "signed by someone else") from exc
    if manifest.site != site:
        raise SnapshotRefused(f"the snapshot belongs to site {manifest.site}, not to this door's site {site}")
    if manifest.group != group:
        raise SnapshotRefused(f"the snapshot is for door group {manifest.group!r}, not {group!r}")
    if manifest.version <= current_version:
        raise SnapshotRefused(f"snapshot version {manifest.version} is not newer than the gallery in use "
                              f"({current_version}): a rollback is refused")
    if not 0 < manifest.size <= MAX_SNAPSHOT_BYTES:
        raise SnapshotRefused(f"the snapshot's size {manifest.size} is out of range")
    return manifest


def check_file(blob: bytes, manifest: Manifest, gallery_key: bytes, binding: ModelBinding) -> Gallery:
    """The snapshot opened, after its size, digest, encryption and model were checked."""
    if len(blob) != manifest.size or hashlib.sha256(blob).hexdigest() != manifest.sha256:
        raise SnapshotRefused("the downloaded snapshot does not match its signed digest: altered or truncated")
    try:
        gallery, header = unpack(blob, lambda kdf: gallery_key)
    except GalleryError as exc:
        raise SnapshotRefused(f"the snapshot does not open with this door's gallery key: {exc}") from exc
    if header.get("generation") != manifest.version:
        raise SnapshotRefused("the snapshot file's version differs from its signed manifest")
    if gallery.binding.sha256 != binding.sha256 or manifest.model_sha256 != binding.sha256:
        raise SnapshotRefused(f"the snapshot holds templates of model {gallery.binding.name}, not of this door's "
                              f"{binding.name}: wait for the snapshot made for this door's model")
    return gallery
