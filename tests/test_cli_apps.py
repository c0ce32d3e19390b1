"""enroll / verify / identify / gallery / demo through the real CLI, with the real models."""
import base64
import json
import os
import secrets

import pytest

from facegate.apps.cli import main
from facegate.edge.images import list_images

pytestmark = pytest.mark.slow


@pytest.fixture()
def env_key(monkeypatch):
    monkeypatch.setenv("FACEGATE_GALLERY_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.delenv("FACEGATE_GALLERY_PASSPHRASE", raising=False)


@pytest.fixture()
def door(tmp_path, env_key, celeb5, embedder_path):
    gallery = tmp_path / "door.fgg"
    for person in ("ben_afflek", "jerry_seinfeld"):
        photos = [str(p) for p in list_images(celeb5 / "train" / person)[:6]]
        assert main(["enroll", "--gallery", str(gallery), "--name", person, "--group", "lobby",
                     "--keep-crops", "--embedder", str(embedder_path), *photos]) == 0
    return gallery


def _json_out(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_identify_and_verify_decisions_and_exit_codes(door, celeb5, capsys):
    probe = str(list_images(celeb5 / "val" / "jerry_seinfeld")[0])
    stranger = str(list_images(celeb5 / "val" / "madonna")[0])
    capsys.readouterr()
    assert main(["identify", "--gallery", str(door), probe, "--json"]) == 0
    out = _json_out(capsys)
    assert out["decision"] == "accept" and out["name"] == "jerry_seinfeld" and out["score"] > out["accept_threshold"]
    assert main(["verify", "--gallery", str(door), "--name", "jerry_seinfeld", probe, "--json"]) == 0
    assert main(["verify", "--gallery", str(door), "--name", "ben_afflek", probe, "--json"]) == 11
    assert _json_out(capsys)["decision"] == "reject"
    assert main(["identify", "--gallery", str(door), stranger, "--json", "--no-quality"]) == 11
    assert main(["verify", "--gallery", str(door), "--name", "jerry_seinfeld", probe, "--door-group", "vault",
                 "--json"]) == 11
    assert "door group" in _json_out(capsys)["reasons"][0]


def test_gallery_admin_commands(door, tmp_path, capsys, monkeypatch):
    capsys.readouterr()
    assert main(["gallery", "ls", "--gallery", str(door)]) == 0
    listing = capsys.readouterr().out
    assert "2 people" in listing and "ben_afflek" in listing and "lobby" in listing
    assert main(["gallery", "rename", "--gallery", str(door), "--name", "ben_afflek", "--new-name", "Ben"]) == 0
    assert main(["gallery", "check", "--gallery", str(door)]) == 0
    assert "gallery OK" in capsys.readouterr().out
    monkeypatch.setenv("BUNDLE_PW", "bundle passphrase")
    bundle = tmp_path / "bundle.fgg"
    assert main(["gallery", "export", "--gallery", str(door), "--out", str(bundle),
                 "--bundle-passphrase-env", "BUNDLE_PW"]) == 0
    assert main(["gallery", "rm", "--gallery", str(door), "--name", "Ben"]) == 0
    assert main(["gallery", "rm", "--gallery", str(door), "--name", "Ben"]) == 8  # person not found
    assert main(["gallery", "import", "--gallery", str(door), "--bundle", str(bundle),
                 "--bundle-passphrase-env", "BUNDLE_PW"]) == 7  # jerry already there: nothing imported
    keyfile = tmp_path / "new.key"
    assert main(["gallery", "keygen", "--out", str(keyfile)]) == 0
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    assert main(["gallery", "rekey", "--gallery", str(door), "--new-key-file", str(keyfile)]) == 0
    assert main(["gallery", "ls", "--gallery", str(door)]) == 7  # the env key no longer opens it
    assert main(["gallery", "ls", "--gallery", str(door), "--key-file", str(keyfile)]) == 0
    os.chmod(keyfile, 0o644)
    assert main(["gallery", "ls", "--gallery", str(door), "--key-file", str(keyfile)]) == 7
    assert "chmod 600" in capsys.readouterr().err


def test_reembed_from_kept_crops(door, embedder_path, capsys):
    from facegate.edge.gallery import GalleryStore, KeySource
    before = GalleryStore(door, KeySource.from_env()).load()
    capsys.readouterr()
    assert main(["gallery", "reembed", "--gallery", str(door), "--embedder", str(embedder_path)]) == 0
    assert f"re-embedded {len(before.templates)} templates" in capsys.readouterr().out
    after = GalleryStore(door, KeySource.from_env()).load()
    # same model, crops stored as JPEG: the re-computed templates stay close to the originals
    cos = (before.templates * after.templates).sum(axis=1)
    assert len(before.templates) >= 8 and cos.min() > 0.95


def test_tampered_gallery_exit_code_and_untouched(door, celeb5, capsys):
    data = bytearray(door.read_bytes())
    data[-40] ^= 0x10
    door.write_bytes(bytes(data))
    probe = str(list_images(celeb5 / "val" / "jerry_seinfeld")[0])
    assert main(["identify", "--gallery", str(door), probe]) == 7
    assert "integrity" in capsys.readouterr().err
    assert door.read_bytes() == bytes(data)


def test_an_edited_card_is_refused_and_only_rebind_with_the_key_trusts_it(tmp_path, env_key, embedder_path,
                                                                         celeb5, capsys):
    """Thresholds edited to -1 (out of range) or lowered to 0.05 (in range): the stranger is never
    accepted, exit 4; `gallery rebind` (gallery key) pins a deliberate recalibration."""
    import shutil
    model = tmp_path / embedder_path.name
    shutil.copy(embedder_path, model)
    card_file = tmp_path / (embedder_path.name + ".json")
    shutil.copy(str(embedder_path) + ".json", card_file)
    original = card_file.read_text()
    gallery = tmp_path / "door.fgg"
    photos = [str(p) for p in list_images(celeb5 / "train" / "jerry_seinfeld")[:4]]
    assert main(["enroll", "--gallery", str(gallery), "--name", "jerry", "--embedder", str(model), *photos]) == 0
    stranger = str(list_images(celeb5 / "val" / "madonna")[0])
    verify = ["verify", "--gallery", str(gallery), "--name", "jerry", "--embedder", str(model), "--no-quality",
              "--json", stranger]
    assert main(verify) == 11
    card = json.loads(original)
    for forged, message in ((-1, "between 0 and 1"), (0.05, "changed since this gallery was enrolled")):
        card["thresholds"] = {k: forged for k in card["thresholds"]}
        card_file.write_text(json.dumps(card))
        capsys.readouterr()
        assert main(verify) == 4
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["gallery", "rebind", "--gallery", str(gallery), "--embedder", str(model)]) == 0
    assert "now trusts the card" in capsys.readouterr().out
    capsys.readouterr()
    assert main(verify) == 11                    # the deliberate (here: absurd) recalibration is in force
    assert _json_out(capsys)["accept_threshold"] == 0.05
    card_file.write_text(original)
    assert main(verify) == 4                     # and the old card is now the edited one
    assert main(["gallery", "rebind", "--gallery", str(gallery), "--embedder", str(model)]) == 0
    assert main(verify) == 11
    os.environ["FACEGATE_GALLERY_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    assert main(["gallery", "rebind", "--gallery", str(gallery), "--embedder", str(model)]) == 7   # wrong key


def test_enroll_bad_inputs(tmp_path, env_key, embedder_path, capsys):
    gallery = tmp_path / "g.fgg"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert main(["enroll", "--gallery", str(gallery), "--name", "X", str(empty),
                 "--embedder", str(embedder_path)]) == 3
    assert "empty" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert main(["enroll", "--gallery", str(gallery), "--name", "X", str(text),
                 "--embedder", str(embedder_path)]) == 3
    import cv2
    import numpy as np
    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 180, np.uint8))
    assert main(["enroll", "--gallery", str(gallery), "--name", "X", str(blank),
                 "--embedder", str(embedder_path)]) == 9
    assert "nothing enrolled" in capsys.readouterr().err
    assert not gallery.exists()


def test_enroll_skips_an_unreadable_photo_among_good_ones(tmp_path, env_key, embedder_path, celeb5, capsys):
    from facegate.edge.gallery import GalleryStore, KeySource
    gallery = tmp_path / "g.fgg"
    good = [str(p) for p in sorted((celeb5 / "train" / "jerry_seinfeld").iterdir())[:3]]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = ["enroll", "--gallery", str(gallery), "--name", "Jerry", *good, str(broken), "--embedder", str(embedder_path)]
    assert main([*args, "--strict"]) == 3                 # strict: one bad photo, nothing enrolled
    assert "--strict" in capsys.readouterr().err and not gallery.exists()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"skipped {broken}" in out and "enrolled Jerry" in out
    g = GalleryStore(gallery, KeySource.from_env()).load()
    enrolled = int(out.split("+")[1].split(" ")[0])
    assert enrolled >= 1 and g.template_count(g.find("Jerry").id) == enrolled
    assert f"{len(good) + 1 - enrolled} photos skipped" in out


def test_demo_accepts_members_and_refuses_strangers(tmp_path, capsys, monkeypatch):
    import stat
    import tempfile

    from facegate.apps.demo import run_demo
    from facegate.edge.gallery import GalleryStore, KeySource
    result = run_demo(workdir=tmp_path)
    s = result["stats"]
    assert s["false_accepts"] == 0
    assert s["impostor_rejects"] == s["impostor_total"] == 10
    assert s["identify_ok"] >= 20 and s["genuine_accepts"] >= 12
    # a kept gallery comes with its key (mode 600), usable by the other commands
    key = tmp_path / "demo-gallery.key"
    assert result["key_file"] == str(key) and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(GalleryStore(result["gallery"], KeySource.from_keyfile(key)).load().people) == 3
    assert "--key-file" in capsys.readouterr().out
    # without --workdir nothing is left behind
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["demo"]) == 0
    assert list(scratch.iterdir()) == []


def test_demo_with_teacher_explains_a_missing_tensorflow(tmp_path, monkeypatch, capsys):
    """`facegate demo --embedder teacher` on a board without TensorFlow and without a teacher export:
    an installer-readable error (exit 4), not a traceback."""
    import sys

    from facegate.apps.cli import main
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "facegate.convert.export.model", None)   # import fails as without TF
    assert main(["demo", "--embedder", "teacher"]) == 4
    assert "needs TensorFlow" in capsys.readouterr().err
