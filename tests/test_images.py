"""The one image loader under attack: a decompression bomb is refused from its header before any
decoding, large photos are decoded reduced, and anything that is not an image is an ImageError."""
from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.edge import images
from facegate.edge.errors import ImageError
from facegate.edge.images import image_size, load_rgb


def _png_bomb(path, side: int = 12000) -> None:
    """A valid PNG of side x side black pixels: a few hundred kB on disk, 3 x side^2 bytes decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_png_bomb_is_refused_from_its_header_quickly_and_cheaply(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_bomb(bomb)
    assert bomb.stat().st_size < 1_000_000 and image_size(bomb.read_bytes()[:64]) == (12000, 12000)
    # the child reports its own peak (VmHWM: reset at exec, unlike ru_maxrss, which counts the forked parent)
    script = ("import sys\nfrom facegate.apps.cli import main\ncode = main(['detect', sys.argv[1]])\n"
              "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
              "print('maxrss_kb', hwm)\nsys.exit(code)\n")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert out.returncode == 3, out.stderr
    assert "12000x12000" in out.stderr and "MP limit" in out.stderr and "Traceback" not in out.stderr
    assert seconds < 10      # the command's own start-up included; the refusal itself reads 64 kB
    peak_mb = int(out.stdout.split("maxrss_kb")[1]) / 1024
    assert peak_mb < 300, f"peak {peak_mb:.0f} MB"


def test_the_limit_is_configurable(tmp_path):
    small = tmp_path / "wide.png"
    cv2.imwrite(str(small), np.zeros((1000, 2000, 3), np.uint8))
    assert load_rgb(small).shape == (1000, 2000, 3)
    with pytest.raises(ImageError, match="over the 1 MP limit"):
        load_rgb(small, max_megapixels=1)


def test_a_large_jpeg_is_decoded_reduced(tmp_path):
    big = tmp_path / "phone.jpg"
    image = np.zeros((4000, 6000, 3), np.uint8)
    cv2.rectangle(image, (2000, 1000), (4000, 3000), (200, 120, 90), -1)
    cv2.imwrite(str(big), image)
    loaded = load_rgb(big)
    assert loaded.shape == (2000, 3000, 3)                     # 24 MP decoded at 1/2: 6 MP
    assert tuple(loaded[1000, 1500]) == pytest.approx((90, 120, 200), abs=3)   # RGB, the rectangle kept


@pytest.mark.parametrize("content", [b"GIF89a" + b"\x00" * 64, b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, b"\xff\xd8\xff"])
def test_unknown_or_truncated_headers_are_image_errors(tmp_path, content):
    path = tmp_path / "odd.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="not a readable image"):
        load_rgb(path)


def test_a_jpeg_with_large_metadata_before_its_size_still_loads(tmp_path):
    """Phone photos carry EXIF/ICC segments before the frame header; two 64 kB segments push the size
    past the first 128 kB of the file, and the header must still be found (no decoding needed)."""
    ok, buf = cv2.imencode(".jpg", np.full((90, 120, 3), 128, np.uint8))
    app = b"\xff\xef" + struct.pack(">H", 65535) + b"\x00" * 65533
    path = tmp_path / "phone.jpg"
    path.write_bytes(buf.tobytes()[:2] + app + app + buf.tobytes()[2:])
    assert image_size(path.read_bytes()) == (120, 90)
    assert load_rgb(path).shape == (90, 120, 3)


def test_a_side_no_camera_makes_is_refused_before_the_decoder_asserts(monkeypatch):
    """Found by the image fuzz target: a 61-byte BMP claiming 2,097,153x1 pixels (2 MP, under the pixel
    limit) made OpenCV raise its own assertion instead of returning None."""
    crash = Path(__file__).parent / "fuzz" / "corpus" / "image" / "crash-bmp-2097153x1.bmp"
    with pytest.raises(ImageError, match="2097153x1 pixels is not a photo"):
        load_rgb(crash, max_megapixels=4)
    monkeypatch.setattr(images, "MAX_SIDE", 1 << 30)       # past our own check, the decoder's refusal is ours too
    with pytest.raises(ImageError, match="the decoder refused it"):
        load_rgb(crash, max_megapixels=4)


def test_an_os2_bitmap_header_gives_its_16_bit_sides():
    core = b"BM" + bytes(12) + (12).to_bytes(4, "little") + struct.pack("<HHHH", 640, 480, 1, 24)
    assert image_size(core) == (640, 480)
