"""Biometric data at rest on the site: every template and crop is sealed with the server key.

AES-256-GCM, the gallery's primitive, with a fresh 96-bit nonce per value and the value's *context*
(``template:<person id>``, ``crop:<person id>``) as associated data: a template copied onto another
person's row, or any flipped byte, fails to open instead of matching the wrong person. The key is the
site's 32-byte key file (mode 0600, made by `facegate site init`), read through the gallery's
:class:`~facegate.edge.gallery.keys.KeySource` so the same permission checks apply.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.edge.errors import KeyFileError, SiteError
from facegate.edge.gallery.keys import KEY_BYTES, KeySource

NONCE_BYTES = 12
_PREFIX = b"facegate-site-v1:"


class Sealer:
    """Seals and opens values with the server key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SiteError(f"the server key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:   # never print secrets
        return "Sealer()"

    @classmethod
    def from_keyfile(cls, path: str | Path) -> "Sealer":
        try:
            return cls(KeySource.from_keyfile(path).secret)
        except KeyFileError as exc:
            raise SiteError(f"server key: {exc}") from exc

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, _PREFIX + context.encode())

    def open(self, blob: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _PREFIX + context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SiteError(f"a sealed value ({context.split(':')[0]}) does not open with this server key: "
                            "it was altered, moved to another record, or the key is not this site's") from exc
