"""Where a gallery's 256-bit key comes from: a passphrase (scrypt), a key file, or the environment.

scrypt parameters and salt are stored in the gallery header, so the same passphrase re-derives
the key on any board. A key file must hold 32 random bytes and be private to its owner
(mode 0600): a world-readable key file is refused rather than silently used.
"""
from __future__ import annotations

import base64
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from facegate.edge.errors import KeyFileError
from facegate.edge.gallery.fileformat import validate_kdf

KEY_BYTES = 32
ENV_KEY = "FACEGATE_GALLERY_KEY"                # base64 of 32 raw bytes
ENV_PASSPHRASE = "FACEGATE_GALLERY_PASSPHRASE"  # a passphrase, derived with scrypt
#: scrypt cost: 2**15 x 8 x 1 takes ~0.1 s and 32 MiB here, ~0.5 s on a Pi 4 (once per open)
DEFAULT_SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}


@dataclass(frozen=True)
class KeySource:
    """A secret and how to turn it into the gallery key."""

    kind: str          # 'passphrase' or 'raw'
    secret: bytes
    scrypt: tuple[int, int, int] = (DEFAULT_SCRYPT["n"], DEFAULT_SCRYPT["r"], DEFAULT_SCRYPT["p"])

    def __repr__(self) -> str:  # never print secrets
        return f"KeySource(kind={self.kind!r})"

    @classmethod
    def from_passphrase(cls, passphrase: str, scrypt_n: int = DEFAULT_SCRYPT["n"]) -> "KeySource":
        if not passphrase:
            raise KeyFileError("the gallery passphrase is empty")
        return cls("passphrase", passphrase.encode("utf-8"), (scrypt_n, DEFAULT_SCRYPT["r"], DEFAULT_SCRYPT["p"]))

    @classmethod
    def from_keyfile(cls, path: str | Path) -> "KeySource":
        path = Path(path)
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise KeyFileError(f"key file {path} is a directory, not a key file; give the file "
                                   "`facegate gallery keygen --out FILE` wrote")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise KeyFileError(f"key file {path} is readable by other users (mode {mode:o}); "
                                   f"run: chmod 600 {path}")
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyFileError(f"key file not found: {path}") from exc
        except OSError as exc:
            raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from exc
        if len(data) != KEY_BYTES:
            raise KeyFileError(f"key file {path} must hold exactly {KEY_BYTES} bytes, found {len(data)}; "
                               "create one with: facegate gallery keygen --out FILE")
        return cls("raw", data)

    @classmethod
    def from_env(cls) -> "KeySource":
        if os.environ.get(ENV_KEY):
            try:
                raw = base64.b64decode(os.environ[ENV_KEY], validate=True)
            except ValueError as exc:
                raise KeyFileError(f"{ENV_KEY} is not valid base64") from exc
            if len(raw) != KEY_BYTES:
                raise KeyFileError(f"{ENV_KEY} must decode to {KEY_BYTES} bytes, got {len(raw)}")
            return cls("raw", raw)
        if os.environ.get(ENV_PASSPHRASE):
            return cls.from_passphrase(os.environ[ENV_PASSPHRASE])
        raise KeyFileError(f"no gallery key given: use --key-file, or set {ENV_KEY} (base64 key) or {ENV_PASSPHRASE}")

    def new_kdf(self) -> dict:
        """KDF parameters for a new gallery (fresh salt for passphrases)."""
        if self.kind == "raw":
            return {"type": "raw"}
        n, r, p = self.scrypt
        return {"type": "scrypt", "salt": base64.b64encode(secrets.token_bytes(16)).decode(), "n": n, "r": r, "p": p}

    def derive(self, kdf: dict) -> bytes:
        """The 32-byte key for a gallery whose header carries these KDF parameters."""
        validate_kdf(kdf)        # types and cost bounds first: a crafted header cannot crash or stall this
        if kdf["type"] == "raw":
            if self.kind != "raw":
                raise KeyFileError("this gallery is locked with a key file / raw key, not a passphrase")
            return self.secret
        if self.kind != "passphrase":
            raise KeyFileError("this gallery is locked with a passphrase, not a key file")
        return Scrypt(salt=base64.b64decode(kdf["salt"]), length=KEY_BYTES, n=kdf["n"], r=kdf["r"],
                      p=kdf["p"]).derive(self.secret)


def write_keyfile(path: str | Path) -> Path:
    """Create a new random key file with mode 0600 (refuses to overwrite)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists: a key file is never overwritten (the gallery it opens "
                           "would be lost); choose another --out") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create the key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    return path
