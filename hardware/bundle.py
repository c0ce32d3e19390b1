"""`facegate hardware bundle --board rpi4 --out DIR`: everything a board needs, offline.

    wheels/            exact aarch64 wheels for the board's Python (pip download --platform), plus facegate's
    requirements.lock  every wheel pinned with --hash=sha256 (pip --require-hashes refuses any other file)
    SHA256SUMS         every file of the bundle; install.sh checks it before touching the system
    models/            the default detector and embedder with their cards (sha256 verified again at load)
    config/door.toml   the board profile's camera/relay/pipeline sections + safe defaults
    systemd/, udev/    the hardened service and device permissions
    selftest/          face photos for `facegate hardware selftest` (from the 5-celebrity set; the bundle is a
                       build artifact, never committed)
    install.sh, README.md, manifest.json

Wheels are cached in $FACEGATE_CACHE/wheels/<board> so rebuilding is fast.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from facegate.edge.config import dump_toml
from facegate.edge.downloads import cache_dir, sha256_of
from facegate.edge.errors import BundleError, ConfigError
from facegate.hardware.profiles import BoardProfile, load_profile

log = logging.getLogger(__name__)
HARDWARE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = HARDWARE_DIR.parent



def _wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def download_wheels(profile: BoardProfile, dest: Path) -> list[Path]:
    """Exactly the wheels pip resolves for the board (into `dest`), reusing cached files."""
    cache = cache_dir() / "wheels" / profile.name
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", *profile.pip_target_args(),
           "--find-links", str(cache), "-d", str(dest)]
    proc = subprocess.run([*cmd, *profile.requirements], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleError(f"could not download the {profile.name} wheels:\n{proc.stderr.strip()[-1500:]}")
    wheels = sorted(dest.glob("*.whl"))
    for w in wheels:
        if not (cache / w.name).exists():
            shutil.copy2(w, cache / w.name)
    names = [_wheel_name_version(w.name)[0] for w in wheels]
    if len(set(names)) != len(names):
        raise BundleError(f"two versions of one package resolved for {profile.name}: {sorted(names)}")
    return wheels


def build_facegate_wheel(dest: Path) -> Path:
    """The facegate wheel for the bundle, built the PEP 517 way (in an isolated environment with the
    setuptools pyproject.toml asks for, not whatever this environment happens to have)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(dest), str(PROJECT_ROOT)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleError(f"could not build the facegate wheel:\n{proc.stderr.strip()[-1500:]}")
    wheels = sorted(dest.glob("facegate-*.whl"))
    if not wheels:
        raise BundleError("pip wheel produced no facegate wheel")
    return wheels[-1]


def door_toml(profile: BoardProfile, embedder_file: str | None) -> str:
    """The bundle's `config/door.toml`: safe door defaults plus the profile's camera, relay and pipeline
    sections, checked against the door's own schema before it is written (a profile with a typo fails
    the build, not the board)."""
    from facegate.edge.door.config import door_config_from_dict
    from facegate.edge.registry import DEFAULT_DETECTOR, DEFAULT_LIVENESS

    doc = {
        "door": {"mode": "identify", "detect_every": 2, "pulse_seconds": 3,
                 "policy": {"k": 3, "n": 5, "cooldown_s": 5, "max_failures": 5, "failure_window_s": 60,
                            "lockout_s": 60}},
        "camera": dict(profile.door.get("camera", {})),
        "relay": dict(profile.door.get("relay", {})),
        "gallery": {"path": "/var/lib/facegate/gallery.fgg", "key_file": "/etc/facegate/gallery.key",
                    "far": "1e-3", "retry_far": "1e-2"},
        "audit": {"path": "/var/lib/facegate/audit.jsonl", "key_file": "/etc/facegate/audit.key"},
        "http": {"enabled": True, "host": "127.0.0.1", "port": 8080},
        "display": {"mode": "headless"},
        "liveness": {"enabled": True, "set": f"/opt/facegate/models/{DEFAULT_LIVENESS}"},
        "pipeline": {**profile.door.get("pipeline", {}), "detector": f"/opt/facegate/models/{DEFAULT_DETECTOR}"},
    }
    if embedder_file:
        doc["pipeline"]["embedder"] = f"/opt/facegate/models/{embedder_file}"
    try:
        door_config_from_dict(doc)
    except ConfigError as exc:
        raise BundleError(f"board profile {profile.name}: its door sections do not fit door.toml: {exc}") from exc
    return dump_toml(doc, header=f"facegate door configuration for {profile.description}")


INSTALL_SH = r"""#!/bin/sh
# Install facegate on a {description} from this bundle, offline. Run as root from the bundle folder.
set -eu
cd "$(dirname "$0")"
echo "checking the bundle (SHA256SUMS)..."
sha256sum --quiet -c SHA256SUMS || {{ echo "bundle files do not match SHA256SUMS: refusing to install" >&2; exit 1; }}
PY=python{python}
command -v "$PY" >/dev/null || {{ echo "$PY is required (see README.md)" >&2; exit 1; }}
{apt}
id facegate >/dev/null 2>&1 || useradd --system --home /var/lib/facegate --shell /usr/sbin/nologin facegate
for g in video gpio; do getent group "$g" >/dev/null && usermod -aG "$g" facegate || true; done
install -d -m 0755 /opt/facegate /opt/facegate/models
"$PY" -m venv {site} /opt/facegate/venv
/opt/facegate/venv/bin/pip install --no-index --find-links wheels --require-hashes -r requirements.lock
cp -r models/. /opt/facegate/models/
install -d -m 0750 -o root -g facegate /etc/facegate
[ -f /etc/facegate/door.toml ] || install -m 0640 -o root -g facegate config/door.toml /etc/facegate/door.toml
[ -f /etc/facegate/gallery.key ] || {{ /opt/facegate/venv/bin/facegate gallery keygen --out /etc/facegate/gallery.key; chown facegate:facegate /etc/facegate/gallery.key; }}
[ -f /etc/facegate/audit.key ] || {{ /opt/facegate/venv/bin/facegate audit keygen --out /etc/facegate/audit.key; chown facegate:facegate /etc/facegate/audit.key; }}
install -m 0644 systemd/facegate-door.service /etc/systemd/system/facegate-door.service
install -m 0644 udev/99-facegate-gpio.rules /etc/udev/rules.d/99-facegate-gpio.rules
udevadm control --reload-rules || true
systemctl daemon-reload
/opt/facegate/venv/bin/facegate hardware selftest --bundle "$(pwd)" || {{ echo "self-test failed: not enabling the service" >&2; exit 1; }}
systemctl enable facegate-door.service
echo "installed. Enrol people with: sudo -u facegate /opt/facegate/venv/bin/facegate enroll --gallery /var/lib/facegate/gallery.fgg --key-file /etc/facegate/gallery.key --name NAME --camera"
echo "then: systemctl start facegate-door"
"""


def runtime_siblings(embedder: Path) -> list[Path]:
    """The same model exported for the other runtimes (.tflite <-> .onnx) beside `embedder`: the same
    stem if there is one (teacher_fp32.tflite -> teacher_fp32.onnx), else the same model name at the
    most exact precision exported (student_fp16.tflite -> student_fp32.onnx, not student_int8.onnx)."""
    name = embedder.stem.rsplit("_", 1)[0]
    found = []
    for suffix in (".tflite", ".onnx"):
        if suffix == embedder.suffix:
            continue
        same = embedder.with_suffix(suffix)
        if same.exists():
            found.append(same)
            continue
        for quant in ("fp32", "fp16", "int8"):
            candidate = embedder.with_name(f"{name}_{quant}{suffix}")
            if candidate.exists():
                found.append(candidate)
                break
    return found


def build_bundle(board: str, out: Path, embedder: Path | None = None, selftest_photos: int = 2) -> dict:
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.images import list_images
    from facegate.edge.registry import DEFAULT_DETECTOR, DEFAULT_LIVENESS, MODELS_DIR, default_embedder_path
    profile = load_profile(board)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    wheels = download_wheels(profile, out / "wheels")
    wheels.append(build_facegate_wheel(out / "wheels"))
    lock_lines = []
    for w in sorted(wheels, key=lambda p: p.name.lower()):
        name, version = _wheel_name_version(w.name)
        lock_lines.append(f"{name}=={version} --hash=sha256:{sha256_of(w)}")
    (out / "requirements.lock").write_text("\n".join(lock_lines) + "\n")
    models = out / "models"
    shutil.copytree(MODELS_DIR / DEFAULT_DETECTOR, models / DEFAULT_DETECTOR)
    shutil.copytree(MODELS_DIR / DEFAULT_LIVENESS, models / DEFAULT_LIVENESS)
    embedder = Path(embedder) if embedder else default_embedder_path()
    # the same embedder in the other runtime's format, when it was exported too (ONNX Runtime boards)
    for model in dict.fromkeys([embedder, *runtime_siblings(embedder)]):
        for suffix in ("", ".json", ".USAGE.md"):
            src = model.with_name(model.name + suffix)
            if src.exists():
                shutil.copy2(src, models / src.name)
    (out / "config").mkdir()
    (out / "config" / "door.toml").write_text(door_toml(profile, embedder.name))
    shutil.copytree(HARDWARE_DIR / "systemd", out / "systemd")
    shutil.copytree(HARDWARE_DIR / "udev", out / "udev")
    shutil.copy2(HARDWARE_DIR / "README.md", out / "README.md")
    shutil.copy2(HARDWARE_DIR / "WIRING.md", out / "WIRING.md")
    selftest = out / "selftest"
    root = celebrity5_dir() / "val"
    for person in ("jerry_seinfeld", "madonna"):
        for i, p in enumerate(list_images(root / person)[:selftest_photos]):
            (selftest / person).mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, selftest / person / f"{i}{p.suffix}")
    apt = f"apt-get install -y {' '.join(profile.apt)} || true" if profile.apt else ":"
    script = out / "install.sh"
    script.write_text(INSTALL_SH.format(description=profile.description, python=profile.python, apt=apt,
                                        site="--system-site-packages" if profile.system_site_packages else ""))
    script.chmod(0o755)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    sums = {str(p.relative_to(out)): sha256_of(p) for p in files}
    manifest = {"board": profile.name, "description": profile.description, "python": profile.python,
                "platforms": list(profile.platforms), "requirements": list(profile.requirements),
                "wheels": {w.name: sums[f"wheels/{w.name}"] for w in wheels},
                "models": {k: v for k, v in sums.items() if k.startswith("models/") and not k.endswith(".md")},
                "bytes": sum(p.stat().st_size for p in files)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sums["manifest.json"] = sha256_of(out / "manifest.json")
    (out / "SHA256SUMS").write_text("".join(f"{h}  {f}\n" for f, h in sorted(sums.items())))
    return manifest


def verify_bundle(folder: Path) -> int:
    """Re-check SHA256SUMS (what install.sh does first); returns the number of files checked."""
    sums = (Path(folder) / "SHA256SUMS").read_text().splitlines()
    for line in sums:
        digest, name = line.split("  ", 1)
        if hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest() != digest:
            raise BundleError(f"{name} does not match SHA256SUMS: the bundle was modified or damaged")
    return len(sums)

