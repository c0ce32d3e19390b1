"""Write the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/ (committed; rerun after
a format changes): `python tests/fuzz/make_corpus.py`."""
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from targets import CORPUS, FUZZ_KEY, SEAL_MARK  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    from facegate.edge.door.audit import AuditLog, seal_path
    from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
    from facegate.edge.gallery.fileformat import encode_body
    from facegate.hardware.bundle import door_toml
    from facegate.hardware.profiles import load_profile

    shutil.rmtree(CORPUS, ignore_errors=True)
    out = {name: CORPUS / name for name in ("gallery", "audit", "card", "config", "image")}
    for folder in out.values():
        folder.mkdir(parents=True)
    work = Path(tempfile.mkdtemp())

    store = GalleryStore(work / "g.fgg", KeySource("raw", FUZZ_KEY))
    store.create(ModelBinding("fuzz", "5e" * 32, 4), keep_crops=True)
    with store.transaction() as g:
        for name in ("Ada", "Grace"):
            p = g.add_person(name, external_id=f"B-{name}", groups=["lobby"], valid_until="2030-01-01")
            g.add_templates(p.id, np.eye(4, dtype=np.float32)[:2], [b"JPEG1", b"JPEG2"])
    (out["gallery"] / "two-people.fgg").write_bytes(store.path.read_bytes())
    (out["gallery"] / "body-two-people").write_bytes(b"\x01" + encode_body(store.load()))

    log = AuditLog(work / "a.jsonl", key=FUZZ_KEY, door_id="front")
    for i in range(3):
        log.append("reject", score=0.1 * i)
    log.append("accept", person_id="c49da8e9c10c", score=0.8)
    for path in (work / "a.jsonl",):
        plain = path.read_bytes() + SEAL_MARK + seal_path(path).read_bytes()
        (out["audit"] / "log-and-seal").write_bytes(plain)
        (out["audit"] / "remac-log-and-seal").write_bytes(b"\x01" + plain)

    for card in ("facenet-student/facenet-student_int8.tflite.json", "mtcnn-student/pnet.tflite.json"):
        shutil.copy(ROOT / "edge" / "models" / card, out["card"] / Path(card).name)

    (out["config"] / "bundle-rpi4.toml").write_text(door_toml(load_profile("rpi4"), "facenet-student_int8.tflite"))
    (out["config"] / "minimal.toml").write_text('[door]\nmode = "claim"\n[http]\nport = 8081\n')

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for ext in (".jpg", ".png", ".bmp", ".webp"):
        (out["image"] / f"tile{ext}").write_bytes(cv2.imencode(ext, tile)[1].tobytes())
    png = bytearray((out["image"] / "tile.png").read_bytes())
    png[16:24] = (12000).to_bytes(4, "big") * 2          # claims 12000x12000 (the CRC no longer matches)
    (out["image"] / "claims-144mp.png").write_bytes(bytes(png))
    # past crashes, kept as found (each replays in tests/test_fuzz.py)
    (out["image"] / "crash-bmp-2097153x1.bmp").write_bytes(bytes.fromhex(
        "424d360300ffffffff0036000000280000020100200001000000100018000"
        "000000000000000000000000000000000000000007a7a7a7a7a7a7a7a7ae8"))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
