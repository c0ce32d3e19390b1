"""Reading images from disk into RGB uint8 arrays, with errors a person can act on.

A photo is never decoded before its size is known: the dimensions come from the file's header (JPEG,
PNG, BMP, WebP), a file over the pixel limit is refused at once (a 140 KB PNG can claim 12000x12000
pixels and cost gigabytes to decode), and large JPEGs are decoded already reduced, so one input never
costs more than a few hundred megabytes.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.errors import ImageError

#: refuse images with more pixels than this (40 MP: any phone photo; a 3-channel decode of it is 120 MB)
MAX_MEGAPIXELS = float(os.environ.get("FACEGATE_MAX_MEGAPIXELS", "40"))
#: decode JPEGs larger than this many pixels at 1/2, 1/4 or 1/8 scale (faces need no more)
DECODE_MEGAPIXELS = 8.0
#: refuse a side longer than this whatever the pixel count (no camera makes a 2,000,000x1 photo, and
#: OpenCV's decoders assert on sides over 2^20 instead of returning None)
MAX_SIDE = 65535


def image_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG, PNG, BMP or WebP header without decoding; None if not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:          # OS/2 BITMAPCOREHEADER: 16-bit sides
            return struct.unpack("<HH", data[18:22])
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:   # markers without a length
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if i + 9 > len(data):
                    return None
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return None


def load_rgb(path: str | Path, max_megapixels: float | None = None) -> np.ndarray:
    """Read an image file as an HxWx3 RGB uint8 array.

    OpenCV returns None for anything it cannot decode; we turn that into an ImageError naming the
    file, and tell an empty or missing file apart from a corrupt one. The header is read first: a file
    claiming more than `max_megapixels` (default MAX_MEGAPIXELS, $FACEGATE_MAX_MEGAPIXELS) is refused
    before any decoding, and a JPEG above DECODE_MEGAPIXELS is decoded at a reduced scale.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file but got a folder: {path}")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(f"image cannot be read ({exc.strerror}): {path}") from exc
    return decode_rgb(data, str(path), max_megapixels)


def decode_rgb(data: bytes, where: str, max_megapixels: float | None = None) -> np.ndarray:
    """Decode image bytes (a file's, an upload's) as HxWx3 RGB uint8 with the same checks as
    :func:`load_rgb`: size read from the header and refused above the limit before any decoding (a
    decompression bomb never reaches the decoder), large JPEGs decoded at reduced scale. `where` names
    the source in error messages."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"image file is empty (0 bytes): {where}")
    size = image_size(memoryview(buf))   # the whole file, uncopied: EXIF/ICC can push a JPEG's size past 64 kB
    if size is None:
        raise ImageError(f"not a readable image (corrupt, or not JPEG, PNG, BMP or WebP): {where}")
    limit = MAX_MEGAPIXELS if max_megapixels is None else max_megapixels
    megapixels = size[0] * size[1] / 1e6
    if megapixels > limit or min(size) <= 0:
        raise ImageError(f"{where}: {size[0]}x{size[1]} pixels ({megapixels:.0f} MP) is over the {limit:g} MP limit "
                         "for one photo (set FACEGATE_MAX_MEGAPIXELS to change it)")
    if max(size) > MAX_SIDE:
        raise ImageError(f"{where}: {size[0]}x{size[1]} pixels is not a photo (a side over {MAX_SIDE} pixels)")
    flags = cv2.IMREAD_COLOR
    if buf[:2].tobytes() == b"\xff\xd8" and megapixels > DECODE_MEGAPIXELS:
        for factor, reduced in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (8, cv2.IMREAD_REDUCED_COLOR_8)):
            flags = reduced
            if megapixels / factor ** 2 <= DECODE_MEGAPIXELS:
                break
    try:
        bgr = cv2.imdecode(buf, flags)
    except cv2.error as exc:      # a header the decoder reads differently from ours, refused by its own checks
        raise ImageError(f"not a readable image (the decoder refused it: {str(exc).strip().splitlines()[-1]}): "
                         f"{where}") from exc
    if bgr is None:
        raise ImageError(f"not a readable image (corrupt or unsupported format): {where}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: HxWx3 uint8 (greyscale is expanded to 3 channels)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[0] < 12 or image.shape[1] < 12:
        raise ImageError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]} px")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """All image files below a folder, sorted, so runs are reproducible. Linked sub-folders are
    followed (a folder of links to identity folders is how held-out sets are made)."""
    found = []
    for root, _, files in os.walk(Path(folder), followlinks=True):
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in found if p.is_file())
