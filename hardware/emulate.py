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

from facegate.edge.backends import suffix_for_backend
from facegate.edge.downloads import cache_dir
from facegate.edge.errors import EmulationError
from facegate.hardware.profiles import load_profile

log = logging.getLogger(__name__)

#: what runs under qemu-user (tflite-runtime needs numpy < 2; OpenCV >= 4.12 needs numpy >= 2)
LEGACY_RUNTIME = ("numpy==1.26.4", "tflite-runtime==2.14.0", "opencv-python-headless==4.11.0.86",
                  "cryptography==50.0.2", "cffi==2.1.1", "pycparser==3.12", "tqdm==4.70.1")



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
    base = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            *profile.pip_target_args(), "--target", str(site)]
    wheel = next(iter(sorted((bundle / "wheels").glob("facegate-*.whl"))), None)
    if wheel is None:
        raise EmulationError(f"{bundle} has no facegate wheel; build it with `facegate hardware bundle`")
    for args in (list(LEGACY_RUNTIME), [str(wheel)]):
        proc = subprocess.run([*base, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EmulationError(f"installing aarch64 wheels failed:\n{proc.stderr[-1500:]}")
    return site


def source_digest() -> str:
    """Digest of the project's package sources: a cached bundle is only reused for the same code
    (its facegate wheel would otherwise test yesterday's code)."""
    import hashlib

    from facegate.hardware.bundle import PROJECT_ROOT
    h = hashlib.sha256()
    for folder in ("edge", "convert", "calibration", "apps", "hardware"):
        for f in sorted((PROJECT_ROOT / folder).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(PROJECT_ROOT)).encode())
                h.update(f.read_bytes())
    h.update((PROJECT_ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()[:12]


def cached_bundle(board: str, bundle: Path | None) -> Path:
    """The given bundle, or one built for the board and the current sources, under the cache."""
    if bundle is not None:
        return Path(bundle)
    base = cache_dir() / "emulation"
    path = base / f"bundle-{board}-{source_digest()}"
    if not (path / "SHA256SUMS").exists():
        from facegate.hardware.bundle import build_bundle
        for old in base.glob(f"bundle-{board}*"):
            shutil.rmtree(old, ignore_errors=True)
        build_bundle(board, path)
    return path


def run_emulated_selftest(board: str = "rpi4", bundle: Path | None = None, timeout_s: int = 1200) -> dict:
    qemu = _need("qemu-aarch64-static", "qemu-user-static")
    bundle = cached_bundle(board, bundle)
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


# -- full-system emulation: the bundle's own wheels (LiteRT, ONNX Runtime, numpy 2) ----------------

APT_ARM64 = ("-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64")
INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host0 /mnt || { echo FACEGATE_MOUNT_FAILED; poweroff -f; }
mount -t proc proc /mnt/proc; mount -t sysfs sys /mnt/sys; mount -o bind /dev /mnt/dev; mount -t tmpfs tmp /mnt/tmp
chroot /mnt /bin/sh /opt/emu/run.sh
poweroff -f
"""
KERNEL_MODULES = ("drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci_modern_dev",
                  "drivers/virtio/virtio_pci", "fs/netfs/netfs", "fs/fscache/fscache", "net/9p/9pnet",
                  "net/9p/9pnet_virtio", "fs/9p/9p")


def system_kit() -> tuple[Path, Path]:
    """Debian's arm64 kernel and a busybox initramfs that mounts the emulation root over virtio-9p
    and runs /opt/emu/run.sh in it. Fetched with apt for arm64 without changing the host's apt
    configuration (separate package lists), cached."""
    kit = cache_dir() / "emulation" / "system-kit"
    kernel, initrd = kit / "vmlinuz", kit / "initrd.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    apt = _need("apt-get", "apt")
    _need("cpio", "cpio")
    lists = kit / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    opts = [*APT_ARM64, "-o", f"Dir::State::Lists={lists}"]
    subprocess.run([apt, *opts, "update", "-qq"], check=True, capture_output=True)
    dep = subprocess.run(["apt-cache", *opts, "depends", "linux-image-arm64"], check=True, capture_output=True,
                         text=True).stdout
    image = next(line.split(":", 1)[1].strip() for line in dep.splitlines() if "Depends:" in line)
    debs = kit / "debs"
    debs.mkdir(exist_ok=True)
    proc = subprocess.run([apt, *opts, "download", image, "busybox-static"], cwd=debs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulationError(f"could not download the arm64 kernel / busybox:\n{proc.stderr[-1000:]}")
    tree = kit / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True, capture_output=True)
    vmlinuz = next((tree / "boot").glob("vmlinuz-*"))
    modules = next((tree / "lib" / "modules").iterdir()) / "kernel"
    ird = kit / "initramfs"
    shutil.rmtree(ird, ignore_errors=True)
    for d in ("bin", "lib/modules", "proc", "sys", "dev", "mnt"):
        (ird / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "bin" / "busybox", ird / "bin" / "busybox")
    for rel in KERNEL_MODULES:
        ko = next(iter(sorted(modules.glob(rel + ".ko*"))), None)
        if ko is None:
            raise EmulationError(f"kernel module {rel} missing from {image}")
        shutil.copy2(ko, ird / "lib" / "modules" / ko.name)
    (ird / "init").write_text(INIT_SCRIPT)
    (ird / "init").chmod(0o755)
    listing = subprocess.run(["find", "."], cwd=ird, capture_output=True, check=True)
    cpio = subprocess.run(["cpio", "-o", "-H", "newc"], cwd=ird, input=listing.stdout, capture_output=True, check=True)
    import gzip
    initrd.write_bytes(gzip.compress(cpio.stdout))
    shutil.copy2(vmlinuz, kernel)
    return kernel, initrd


def run_system_selftest(board: str = "rpi4", bundle: Path | None = None, timeout_s: int = 2400,
                        backends: tuple[str, ...] = ("litert", "onnxruntime")) -> dict:
    """The bundle's own aarch64 wheels under qemu-system-aarch64 (cortex-a72, 2 cores, 3 GiB)."""
    qemu = _need("qemu-system-aarch64", "qemu-system-arm")
    profile = load_profile(board)
    bundle = cached_bundle(board, bundle)
    kernel, initrd = system_kit()
    root = arm64_root()
    emu = root / "opt" / "emu"
    shutil.rmtree(emu, ignore_errors=True)
    (emu).mkdir(parents=True)
    (root / "tmp").mkdir(exist_ok=True)
    shutil.copytree(bundle, emu / "bundle", copy_function=os_link_or_copy)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           *profile.pip_target_args(), "--target", str(emu / "site"),
                           *map(str, sorted((bundle / "wheels").glob("*.whl")))], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulationError(f"installing the bundle's wheels failed:\n{proc.stderr[-1500:]}")
    models = emu / "bundle" / "models"
    lines = ["cd /opt/emu"]
    for be in backends:
        suffix = suffix_for_backend(be)
        embedder = next((p for p in sorted(models.glob(f"*{suffix}"))), None)
        if embedder is None:
            lines.append(f"echo '=== BACKEND {be}'; echo 'SKIPPED: no {suffix} embedder in the bundle'")
            continue
        lines.append(f"echo '=== BACKEND {be}'; PYTHONPATH=/opt/emu/site HOME=/tmp FACEGATE_CACHE=/tmp/fg "
                     f"/usr/bin/python{profile.python} -m facegate.apps.cli hardware selftest --bundle /opt/emu/bundle "
                     f"--backend {be} --detector-format {suffix[1:]} --embedder /opt/emu/bundle/models/{embedder.name} "
                     f"--relay mock; echo SELFTEST_EXIT=$?")
    (emu / "run.sh").write_text("\n".join(lines) + "\n")
    cmd = [qemu, "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "3072", "-kernel", str(kernel),
           "-initrd", str(initrd), "-append", "console=ttyAMA0 rdinit=/init quiet", "-nographic", "-no-reboot",
           "-virtfs", f"local,path={root},mount_tag=host0,security_model=none,id=host0"]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s).stdout
    except subprocess.TimeoutExpired as exc:
        raise EmulationError(f"the full-system emulation did not finish within {timeout_s} s") from exc
    results = {}
    for section in out.split("=== BACKEND ")[1:]:
        name, _, body = section.partition("\n")
        report = "\n".join(x for x in body.splitlines() if x.startswith(("PASS", "FAIL", "self-test", "SKIPPED")))
        results[name.strip()] = {"passed": "SELFTEST_EXIT=0" in body, "report": report,
                                 "tail": body[-600:] if "SELFTEST_EXIT=0" not in body else ""}
    if "FACEGATE_MOUNT_FAILED" in out:
        raise EmulationError("the emulated kernel could not mount the root over virtio-9p")
    return {"board": board, "mode": "qemu-system-aarch64 (cortex-a72, 2 cores)", "backends": results,
            "seconds": round(time.perf_counter() - t0, 1)}


def os_link_or_copy(src: str, dst: str) -> str:
    """Hard-link bundle files into the root (no 200 MB copy); copy across file systems."""
    import os
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
