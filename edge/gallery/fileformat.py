"""Gallery file format v2 (v1 still opens): an authenticated plaintext header and one AES-256-GCM encrypted body.

    offset  size  content
    0       8     magic b"FGGALLRY"
    8       4     header length H (big-endian)
    12      H     header JSON (format, kdf, key check value, model binding, template dtype, generation)
    12+H    32    SHA-256 of the header JSON (tells a damaged header apart from a wrong key)
    44+H    12    nonce (fresh random for every write)
    56+H    ...   AES-GCM(key, nonce, body, aad = everything before the nonce) ciphertext and 16-byte tag

The body is `u32 json length | JSON (people, owners, template layout, crop offsets) | template bytes
| crop bytes`. Templates are stored as float32, float16 or int8 (header `template_dtype`); format 2
stores int8 templates with one float32 scale per template after the codes (each template uses the
whole int8 range), format 1 with the fixed scale 1/127. Format 2 templates can be PCA-reduced: the
header names the projection (dims, sha256), the body holds it (:mod:`~facegate.edge.gallery.projection`).
Galleries are written in format 2.

The key check value (HMAC of a constant) tells a wrong key apart from a tampered file without
revealing anything about the key; the header MAC (HMAC of the other header fields under the key) tells
an edited key check value apart from a wrong key. Every header field is checked for type and range
(:func:`validate_header`) before any key derivation: a crafted header cannot crash the reader or make it
spend seconds and gigabytes in scrypt.
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

from facegate.edge.errors import GalleryCorruptError, GalleryError, WrongKeyError
from facegate.edge.gallery.int8_scoring import quantize_rows
from facegate.edge.gallery.projection import Projection
from facegate.edge.gallery.records import TEMPLATE_DTYPES, Gallery, ModelBinding, Person

MAGIC = b"FGGALLRY"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
NONCE_BYTES = 12
#: scrypt cost bounds for a gallery header: memory 128*n*r <= 32 MiB and work n*r*p <= 2**18 (the default,
#: n=2**15 r=8 p=1, ~0.1 s here, estimated ~0.5 s on a Pi 4); anything dearer is a crafted header, not a gallery
SCRYPT_MAX_MEMORY = 32 * 1024 * 1024
SCRYPT_MAX_WORK = 2 ** 18
#: what a body that does not decode raises; unpack() reports each as GalleryCorruptError
BODY_ERRORS = (ValueError, KeyError, TypeError, IndexError, struct.error, RecursionError, GalleryError)
HEADER_FIELDS = {"format", "kdf", "key_check", "model", "template_dtype", "keep_crops", "generation"}
#: format 2 also names the PCA projection its templates are reduced with (null: none)
HEADER_FIELDS_V2 = HEADER_FIELDS | {"projection"}


def key_check(key: bytes) -> str:
    return base64.b64encode(hmac.new(key, b"facegate-gallery-key-check-v1", hashlib.sha256).digest()[:16]).decode()


def template_bytes(dtype: str, n: int, dim: int, fmt: int = FORMAT_VERSION) -> int:
    """Bytes that n templates of `dim` take in a body of format `fmt`."""
    if dtype == "int8":
        return n * dim + (4 * n if fmt >= 2 else 0)
    return n * dim * {"float32": 4, "float16": 2}[dtype]


def _encode_templates(t: np.ndarray, dtype: str) -> bytes:
    if dtype == "float32":
        return t.astype("<f4").tobytes()
    if dtype == "float16":
        return t.astype("<f2").tobytes()
    codes, scales = quantize_rows(t)
    return codes.tobytes() + scales.astype("<f4").tobytes()


def _decode_templates(buf: bytes, dtype: str, n: int, dim: int, fmt: int) -> np.ndarray:
    if dtype == "float32":
        return np.frombuffer(buf, "<f4").reshape(n, dim).astype(np.float32)
    if dtype == "float16":
        return np.frombuffer(buf, "<f2").reshape(n, dim).astype(np.float32)
    codes = np.frombuffer(buf, np.int8, count=n * dim).reshape(n, dim).astype(np.float32)
    if fmt < 2:
        return codes / 127.0
    scales = np.frombuffer(buf, "<f4", offset=n * dim, count=n)
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError("an int8 template scale is not a positive number")
    return codes * scales[:, None].astype(np.float32)


def as_stored(templates: np.ndarray, dtype: str) -> np.ndarray:
    """The templates as a gallery of `dtype` gives them back after writing and reading (what its scores
    are computed from)."""
    t = np.asarray(templates, np.float32)
    return _decode_templates(_encode_templates(t, dtype), dtype, len(t), t.shape[1], FORMAT_VERSION)


def encode_body(g: Gallery) -> bytes:
    tbytes = _encode_templates(g.templates, g.template_dtype)
    crop_lengths = [len(c) if c is not None else -1 for c in g.crops]
    meta = {
        "people": [asdict(g.people[pid]) for pid in g.person_order],
        "owners": g.owners.astype(int).tolist(),
        "templates": {"count": int(len(g.templates)), "bytes": len(tbytes)},
        "crop_lengths": crop_lengths if g.keep_crops else [],
    }
    if g.projection is not None:
        meta["projection"] = g.projection.to_record()
    mjson = json.dumps(meta, separators=(",", ":")).encode()
    crops = b"".join(c for c in g.crops if c is not None)
    return struct.pack(">I", len(mjson)) + mjson + tbytes + crops


def decode_body(body: bytes, binding: ModelBinding, dtype: str, keep_crops: bool, fmt: int = FORMAT_VERSION,
                projection: dict | None = None) -> Gallery:
    """The gallery from a decrypted body, every count and offset checked against the others (a body
    is authenticated, but a bug or an old writer must not produce a gallery whose rows point nowhere)."""
    if len(body) < 4:
        raise ValueError("body too short")
    (mlen,) = struct.unpack(">I", body[:4])
    meta = json.loads(body[4:4 + mlen], object_pairs_hook=_unique_keys)
    if not isinstance(meta, dict) or not isinstance(meta.get("people"), list) or not isinstance(meta.get("owners"), list):
        raise ValueError("body index is not a gallery index")
    g = Gallery(binding, dtype, keep_crops)
    if projection is not None:         # the header names one: the body must hold exactly that one
        g.projection = Projection.from_record(meta.get("projection"))
        if g.projection.sha256 != projection["sha256"] or g.projection.dims != projection["dims"] or \
                g.projection.input_dim != binding.dim:
            raise ValueError("the body's PCA projection is not the one the header names")
    elif "projection" in meta:
        raise ValueError("the body holds a PCA projection the header does not name")
    dim = g.template_dim
    for p in meta["people"]:
        person = Person(**p)
        if not isinstance(person.id, str) or not isinstance(person.name, str) or person.id in g.people:
            raise ValueError("a person record is malformed or repeated")
        g.people[person.id] = person
        g.person_order.append(person.id)
    n, nbytes = meta["templates"]["count"], meta["templates"]["bytes"]
    if not isinstance(n, int) or n < 0 or nbytes != template_bytes(dtype, n, dim, fmt) or len(meta["owners"]) != n:
        raise ValueError("template count, size and owners do not agree")
    start = 4 + mlen
    stop = start + nbytes
    if stop > len(body):
        raise ValueError("templates run past the end of the body")
    g.templates = _decode_templates(body[start:stop], dtype, n, dim, fmt)
    g.owners = np.array(meta["owners"], np.int64)
    if n and (g.owners.min() < 0 or g.owners.max() >= len(g.person_order)):
        raise ValueError("a template belongs to nobody")
    if keep_crops:
        lengths = meta["crop_lengths"]
        if len(lengths) != n or any(not isinstance(v, int) or v < -1 for v in lengths) or \
                stop + sum(max(v, 0) for v in lengths) != len(body):
            raise ValueError("crop table does not fit the body")
        pos = stop
        for length in lengths:
            g.crops.append(None if length < 0 else body[pos:pos + length])
            pos += max(length, 0)
    else:
        g.crops = [None] * n
    return g


def header_mac(key: bytes, header: dict) -> str:
    """HMAC of every header field except the key check value and the MAC itself."""
    fields = {k: v for k, v in header.items() if k not in ("key_check", "header_mac")}
    data = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(hmac.new(key, b"facegate-gallery-header-v1" + data, hashlib.sha256).digest()).decode()


def make_header(g: Gallery, kdf: dict, key: bytes, generation: int) -> dict:
    header = {"format": FORMAT_VERSION, "kdf": kdf, "key_check": key_check(key),
              "model": asdict(g.binding), "template_dtype": g.template_dtype, "keep_crops": g.keep_crops,
              "generation": generation,
              "projection": None if g.projection is None else {"dims": g.projection.dims, "sha256": g.projection.sha256}}
    header["header_mac"] = header_mac(key, header)
    return header


def _b64(value, field: str, lengths: range) -> bytes:
    if not isinstance(value, str):
        raise GalleryCorruptError(f"gallery header field {field} is not text")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise GalleryCorruptError(f"gallery header field {field} is not valid base64") from exc
    if len(raw) not in lengths:
        raise GalleryCorruptError(f"gallery header field {field} has {len(raw)} bytes")
    return raw


def _int(value, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise GalleryCorruptError(f"gallery header field {field} must be an integer from {low} to {high}")
    return value


def _hex64(value, field: str, empty_ok: bool = False) -> None:
    if empty_ok and value == "":
        return
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise GalleryCorruptError(f"gallery header field {field} is not a sha256 digest")


def validate_kdf(kdf) -> None:
    """Refuse KDF parameters no facegate gallery has, before anything is derived from them."""
    if not isinstance(kdf, dict) or kdf.get("type") not in ("raw", "scrypt"):
        raise GalleryCorruptError("gallery header names an unknown key derivation")
    if kdf["type"] == "raw":
        if set(kdf) != {"type"}:
            raise GalleryCorruptError("gallery header: a raw-key gallery has no KDF parameters")
        return
    if set(kdf) != {"type", "salt", "n", "r", "p"}:
        raise GalleryCorruptError("gallery header: scrypt parameters must be exactly salt, n, r, p")
    _b64(kdf["salt"], "kdf.salt", range(16, 65))
    n, r, p = _int(kdf["n"], "kdf.n", 2, 2 ** 20), _int(kdf["r"], "kdf.r", 1, 16), _int(kdf["p"], "kdf.p", 1, 16)
    if n & (n - 1) or n < 2 ** 10 or 128 * n * r > SCRYPT_MAX_MEMORY or n * r * p > SCRYPT_MAX_WORK:
        raise GalleryCorruptError(f"gallery key-derivation cost is out of range (scrypt n={n}, r={r}, p={p}; at "
                                  f"most {SCRYPT_MAX_MEMORY >> 20} MiB and n*r*p <= {SCRYPT_MAX_WORK})")


def validate_header(header: dict) -> None:
    """Every field's type and range, so that no later step meets a value it cannot handle."""
    fields = HEADER_FIELDS_V2 if header.get("format") == 2 else HEADER_FIELDS
    unknown = set(header) - fields - {"header_mac"}
    missing = fields - set(header)
    if unknown or missing:
        raise GalleryCorruptError(f"gallery header fields do not fit format {header.get('format')} "
                                  f"(missing: {sorted(missing) or '-'}, unknown: {sorted(unknown) or '-'})")
    validate_kdf(header["kdf"])
    _b64(header["key_check"], "key_check", range(16, 17))
    if "header_mac" in header:
        _b64(header["header_mac"], "header_mac", range(32, 33))
    model = header["model"]
    if not isinstance(model, dict) or not {"name", "sha256", "dim"} <= set(model) <= {"name", "sha256", "dim",
                                                                                          "card_sha256"}:
        raise GalleryCorruptError("gallery header field model must hold name, sha256, dim (and card_sha256)")
    if not isinstance(model["name"], str) or not 0 < len(model["name"]) <= 256:
        raise GalleryCorruptError("gallery header field model.name must be a short text")
    _hex64(model["sha256"], "model.sha256")
    _hex64(model.get("card_sha256", ""), "model.card_sha256", empty_ok=True)
    _int(model["dim"], "model.dim", 1, 4096)
    if header["template_dtype"] not in TEMPLATE_DTYPES:
        raise GalleryCorruptError(f"gallery header field template_dtype must be one of {TEMPLATE_DTYPES}")
    if not isinstance(header["keep_crops"], bool):
        raise GalleryCorruptError("gallery header field keep_crops must be true or false")
    _int(header["generation"], "generation", 0, 2 ** 63)
    projection = header.get("projection")
    if projection is not None:
        if not isinstance(projection, dict) or set(projection) != {"dims", "sha256"}:
            raise GalleryCorruptError("gallery header field projection must be null or hold dims and sha256")
        _int(projection["dims"], "projection.dims", 1, model["dim"])
        _hex64(projection["sha256"], "projection.sha256")


def pack(g: Gallery, kdf: dict, key: bytes, generation: int) -> bytes:
    header = json.dumps(make_header(g, kdf, key, generation), sort_keys=True).encode()
    prefix = MAGIC + struct.pack(">I", len(header)) + header + hashlib.sha256(header).digest()
    nonce = secrets.token_bytes(NONCE_BYTES)
    return prefix + nonce + AESGCM(key).encrypt(nonce, encode_body(g), prefix)


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a field appears twice")
    return out


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
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:      # bad JSON or UTF-8, a duplicated key, absurd nesting
        raise GalleryCorruptError(f"gallery header is corrupted ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") not in READABLE_FORMATS or isinstance(header["format"], bool):
        raise GalleryCorruptError(f"unsupported gallery format {header.get('format') if isinstance(header, dict) else '?'}")
    validate_header(header)
    return header, blob[:end], blob[end:]


def unpack(blob: bytes, key_for) -> tuple[Gallery, dict]:
    """Decrypt a gallery file. `key_for(kdf)` returns the key for the header's KDF parameters (only
    called once the header has passed :func:`validate_header`)."""
    header, prefix, rest = read_header(blob)
    key = key_for(header["kdf"])
    binding = ModelBinding(**header["model"])
    kcv_ok = hmac.compare_digest(key_check(key), header["key_check"])
    mac = header.get("header_mac")
    if mac is not None and hmac.compare_digest(header_mac(key, header), mac):
        if not kcv_ok:
            raise GalleryCorruptError("gallery header was tampered with (its key check value was edited); the key "
                                      "is right. Restore the file from a backup.")
    elif kcv_ok and mac is not None:
        raise GalleryCorruptError("gallery header was tampered with (fields changed after it was written); the "
                                  "key is right. Restore the file from a backup.")
    elif not kcv_ok:
        raise WrongKeyError("wrong passphrase or key for this gallery")
    try:
        body = AESGCM(key).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], prefix)
    except InvalidTag as exc:
        raise GalleryCorruptError("gallery file failed its integrity check: it was modified or truncated. "
                                  "Restore it from a backup or an exported bundle.") from exc
    try:
        return decode_body(body, binding, header["template_dtype"], header["keep_crops"], header["format"],
                           header.get("projection")), header
    except BODY_ERRORS as exc:
        raise GalleryCorruptError(f"gallery body cannot be decoded: {exc}") from exc
