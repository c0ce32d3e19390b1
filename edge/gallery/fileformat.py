"""Gallery file format v1: an authenticated plaintext header and one AES-256-GCM encrypted body.

    offset  size  content
    0       8     magic b"FGGALLRY"
    8       4     header length H (big-endian)
    12      H     header JSON (format, kdf, key check value, model binding, template dtype, generation)
    12+H    32    SHA-256 of the header JSON (tells a damaged header apart from a wrong key)
    44+H    12    nonce (fresh random for every write)
    56+H    ...   AES-GCM(key, nonce, body, aad = everything before the nonce) ciphertext and 16-byte tag

The body is `u32 json length | JSON (people, owners, template layout, crop offsets) | template bytes
| crop bytes`. The key check value (HMAC of a constant) tells a wrong key apart from a tampered
file without revealing anything about the key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import asdict

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.edge.errors import GalleryCorruptError, WrongKeyError
from facegate.edge.gallery.records import Gallery, ModelBinding, Person

MAGIC = b"FGGALLRY"
FORMAT_VERSION = 1
NONCE_BYTES = 12


def key_check(key: bytes) -> str:
    return base64.b64encode(hmac.new(key, b"facegate-gallery-key-check-v1", hashlib.sha256).digest()[:16]).decode()


def _encode_templates(t: np.ndarray, dtype: str) -> bytes:
    if dtype == "float32":
        return t.astype("<f4").tobytes()
    if dtype == "float16":
        return t.astype("<f2").tobytes()
    return np.clip(np.round(t * 127.0), -127, 127).astype(np.int8).tobytes()  # unit vectors: |v_i| <= 1


def _decode_templates(buf: bytes, dtype: str, n: int, dim: int) -> np.ndarray:
    if dtype == "float32":
        return np.frombuffer(buf, "<f4").reshape(n, dim).astype(np.float32)
    if dtype == "float16":
        return np.frombuffer(buf, "<f2").reshape(n, dim).astype(np.float32)
    return np.frombuffer(buf, np.int8).reshape(n, dim).astype(np.float32) / 127.0


def encode_body(g: Gallery) -> bytes:
    tbytes = _encode_templates(g.templates, g.template_dtype)
    crop_lengths = [len(c) if c is not None else -1 for c in g.crops]
    meta = {
        "people": [asdict(g.people[pid]) for pid in g.person_order],
        "owners": g.owners.astype(int).tolist(),
        "templates": {"count": int(len(g.templates)), "bytes": len(tbytes)},
        "crop_lengths": crop_lengths if g.keep_crops else [],
    }
    mjson = json.dumps(meta, separators=(",", ":")).encode()
    crops = b"".join(c for c in g.crops if c is not None)
    return struct.pack(">I", len(mjson)) + mjson + tbytes + crops


def decode_body(body: bytes, binding: ModelBinding, dtype: str, keep_crops: bool) -> Gallery:
    (mlen,) = struct.unpack(">I", body[:4])
    meta = json.loads(body[4:4 + mlen])
    g = Gallery(binding, dtype, keep_crops)
    for p in meta["people"]:
        person = Person(**p)
        g.people[person.id] = person
        g.person_order.append(person.id)
    n = meta["templates"]["count"]
    start = 4 + mlen
    stop = start + meta["templates"]["bytes"]
    g.templates = _decode_templates(body[start:stop], dtype, n, binding.dim)
    g.owners = np.array(meta["owners"], np.int64)
    if keep_crops:
        pos = stop
        for length in meta["crop_lengths"]:
            g.crops.append(None if length < 0 else body[pos:pos + length])
            pos += max(length, 0)
    else:
        g.crops = [None] * n
    return g


def make_header(g: Gallery, kdf: dict, key: bytes, generation: int) -> dict:
    return {"format": FORMAT_VERSION, "kdf": kdf, "key_check": key_check(key),
            "model": asdict(g.binding), "template_dtype": g.template_dtype, "keep_crops": g.keep_crops,
            "generation": generation}


def pack(g: Gallery, kdf: dict, key: bytes, generation: int) -> bytes:
    header = json.dumps(make_header(g, kdf, key, generation), sort_keys=True).encode()
    prefix = MAGIC + struct.pack(">I", len(header)) + header + hashlib.sha256(header).digest()
    nonce = secrets.token_bytes(NONCE_BYTES)
    return prefix + nonce + AESGCM(key).encrypt(nonce, encode_body(g), prefix)


def read_header(blob: bytes) -> tuple[dict, bytes, bytes]:
    """(header, authenticated prefix, encrypted part). Raises GalleryCorruptError on junk."""
    if len(blob) < 12 or blob[:8] != MAGIC:
        raise GalleryCorruptError("not a facegate gallery file (bad magic bytes): wrong file or corrupted")
    (hlen,) = struct.unpack(">I", blob[8:12])
    end = 12 + hlen + 32
    if hlen > 1 << 20 or len(blob) < end + NONCE_BYTES + 16:
        raise GalleryCorruptError("gallery file is truncated or corrupted (header/body size does not fit)")
    raw = blob[12:12 + hlen]
    if not hmac.compare_digest(hashlib.sha256(raw).digest(), blob[12 + hlen:end]):
        raise GalleryCorruptError("gallery header is corrupted (checksum mismatch); restore from a backup")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GalleryCorruptError("gallery header is corrupted") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise GalleryCorruptError(f"unsupported gallery format {header.get('format') if isinstance(header, dict) else '?'}")
    return header, blob[:end], blob[end:]


def unpack(blob: bytes, key_for) -> tuple[Gallery, dict]:
    """Decrypt a gallery file. `key_for(kdf)` returns the key for the header's KDF parameters."""
    header, prefix, rest = read_header(blob)
    try:
        key = key_for(header["kdf"])
        binding = ModelBinding(**header["model"])
        dtype, keep = header["template_dtype"], bool(header["keep_crops"])
    except (KeyError, TypeError) as exc:
        raise GalleryCorruptError("gallery header is missing fields") from exc
    if not hmac.compare_digest(key_check(key), str(header.get("key_check", ""))):
        raise WrongKeyError("wrong passphrase or key for this gallery")
    try:
        body = AESGCM(key).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], prefix)
    except InvalidTag as exc:
        raise GalleryCorruptError("gallery file failed its integrity check: it was modified or truncated. "
                                  "Restore it from a backup or an exported bundle.") from exc
    try:
        return decode_body(body, binding, dtype, keep), header
    except (ValueError, KeyError, TypeError, struct.error) as exc:  # authenticated but unreadable
        raise GalleryCorruptError(f"gallery body cannot be decoded: {exc}") from exc
