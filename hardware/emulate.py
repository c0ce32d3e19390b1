"""`facegate hardware emulate --board rpi4`: run the board self-test on emulated aarch64.

1. An arm64 Debian bookworm root (debootstrap --foreign, packages unpacked with dpkg -x; cached).
2. The bundle's facegate wheel and the legacy runtime set below installed with
   `pip install --target --platform ...` on this machine: nothing arm64 runs at install time.
3. `facegate hardware selftest --bundle B --backend tflite-runtime` under `qemu-aarch64-static -L ROOT`.

Why the legacy set: under qemu-user 7.2, ai-edge-litert 2.3 and onnxruntime 1.32 crash (SIGSEGV)
at interpreter/session creation, while tflite-runtime 2.14 with numpy 1.26 works. The emulated run
proves that the models, cards, cascade, alignment, embedding, gallery and self-test work on
aarch64; emulated timings prove function, not speed (see docs/benchmarks.md for the Pi estimate).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from facegate.edge.downloads import cache_dir
from facegate.edge.errors import FacegateError
from facegate.hardware.profiles import load_profile

log = logging.getLogger(__name__)

#: what runs under qemu-user (tflite-runtime needs numpy < 2; OpenCV >= 4.12 needs numpy >= 2)
LEGACY_RUNTIME = ("numpy==1.26.4", "tflite-runtime==2.14.0", "opencv-python-headless==4.11.0.86",
                  "cryptography==50.0.2", "cffi==2.1.1", "pycparser==3.12", "tqdm==4.70.1")


class EmulationError(FacegateError):
    exit_code = 17


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if not path:
        raise EmulationError(f"{tool} not found: install it with `apt-get install {package}`")
    return path


def arm64_root(suite: str = "bookworm") -> Path:
    """A cached arm64 root with Python 3.11 that qemu-aarch64-static can run with -L."""
    root = cache_dir() / "emulation" / f"{suite}-arm64"
    if (root / ".complete").exists():
        return root
    debootstrap = _need("debootstrap", "debootstrap")
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([debootstrap, "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3",
                           suite, str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulationError(f"debootstrap failed (is the Debian archive reachable?):\n{proc.stderr[-1500:]}")
    for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
    if not (root / "usr" / "bin" / "python3.11").exists():
        raise EmulationError("the arm64 root has no python3.11")
    (root / ".complete").write_text("ok\n")
    return root


def install_site(bundle: Path, profile_name: str) -> Path:
    """Legacy runtime + the bundle's own facegate wheel, installed for aarch64 into a target dir."""
    profile = load_profile(profile_name)
    site = cache_dir() / "emulation" / f"site-{profile_name}"
    shutil.rmtree(site, ignore_errors=True)
    platforms = [a for tag in profile.platforms for a in ("--platform", tag)]
    base = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--python-version", profile.python, "--implementation", "cp", *platforms,
            "--target", str(site)]
    wheel = next(iter(sorted((bundle / "wheels").glob("facegate-*.whl"))), None)
    if wheel is None:
        raise EmulationError(f"{bundle} has no facegate wheel; build it with `facegate hardware bundle`")
    for args in (list(LEGACY_RUNTIME), [str(wheel)]):
        proc = subprocess.run([*base, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EmulationError(f"installing aarch64 wheels failed:\n{proc.stderr[-1500:]}")
    return site


def run_emulated_selftest(board: str = "rpi4", bundle: Path | None = None, timeout_s: int = 1200) -> dict:
    qemu = _need("qemu-aarch64-static", "qemu-user-static")
    if bundle is None:
        from facegate.hardware.bundle import build_bundle
        bundle = cache_dir() / "emulation" / f"bundle-{board}"
        if not (bundle / "SHA256SUMS").exists():
            shutil.rmtree(bundle, ignore_errors=True)
            build_bundle(board, bundle)
    bundle = Path(bundle)
    t0 = time.perf_counter()
    root = arm64_root()
    site = install_site(bundle, board)
    prepared = time.perf_counter() - t0
    env = {"PYTHONPATH": str(site), "FACEGATE_CACHE": str(cache_dir() / "emulation" / "facegate-cache"),
           "PATH": "/usr/bin:/bin", "HOME": str(cache_dir() / "emulation")}
    cmd = [qemu, "-L", str(root), str(root / "usr" / "bin" / "python3.11"), "-m", "facegate.apps.cli",
           "hardware", "selftest", "--bundle", str(bundle), "--backend", "tflite-runtime", "--relay", "mock"]
    t1 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise EmulationError(f"the emulated self-test did not finish within {timeout_s} s") from exc
    report = "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", "self-test")))
    return {"board": board, "passed": proc.returncode == 0, "exit_code": proc.returncode, "report": report,
            "stderr_tail": proc.stderr[-800:], "seconds_prepare": round(prepared, 1),
            "seconds_selftest": round(time.perf_counter() - t1, 1), "runtime": list(LEGACY_RUNTIME),
            "bundle": str(bundle)}
