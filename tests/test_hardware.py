"""Board profiles, the rpi4 bundle's contents and integrity, the systemd unit, the self-test."""
import configparser
import json
import re

import pytest

from facegate.edge.errors import UsageError
from facegate.hardware.profiles import list_profiles, load_profile

pytestmark = pytest.mark.slow


def test_profiles_are_complete():
    assert set(list_profiles()) == {"rpi4", "rpi5", "jetson-nano", "jetson-orin"}
    for name in list_profiles():
        p = load_profile(name)
        assert p.python in ("3.10", "3.11") and all("aarch64" in t for t in p.platforms)
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.]+", r) for r in p.requirements), p.requirements
        assert {"camera", "relay", "pipeline"} <= set(p.door)
        gpio = {r.split("==")[0] for r in p.requirements} & {"gpiozero", "Jetson.GPIO"}
        assert len(gpio) == 1  # never both GPIO libraries in one environment
    assert load_profile("rpi4").door["relay"]["kind"] == "gpiozero"
    assert load_profile("jetson-orin").door["camera"]["source"] == "gstreamer"
    with pytest.raises(UsageError, match="rpi4"):
        load_profile("rpi3")


def test_systemd_unit_is_hardened_and_supervised():
    from facegate.hardware.bundle import HARDWARE_DIR
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(HARDWARE_DIR / "systemd" / "facegate-door.service")
    svc = unit["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0 and svc["Restart"] == "always"
    # the watchdog's signal is one the door locks on, and a stop by signal (exit 130) is a clean stop
    import signal

    from facegate.edge.door.unit import STOP_SIGNALS
    assert getattr(signal, svc["WatchdogSignal"]) in STOP_SIGNALS and "130" in svc["SuccessExitStatus"].split()
    assert svc["User"] == "facegate" and svc["ProtectSystem"] == "strict" and svc["NoNewPrivileges"] == "true"
    assert svc["StateDirectory"] == "facegate" and svc["KillSignal"] == "SIGTERM"


@pytest.fixture(scope="module")
def rpi4_bundle(tmp_path_factory, embedder_path):
    from facegate.hardware.bundle import build_bundle
    out = tmp_path_factory.mktemp("bundle") / "facegate-rpi4"
    manifest = build_bundle("rpi4", out, embedder_path)
    return out, manifest


def test_rpi4_bundle_contents(rpi4_bundle):
    from facegate.edge.door.config import load_door_config
    from facegate.edge.downloads import sha256_of
    out, manifest = rpi4_bundle
    wheels = sorted(p.name for p in (out / "wheels").glob("*.whl"))
    binary = [w for w in wheels if not w.endswith("-any.whl")]
    assert binary and all("aarch64" in w for w in binary)
    assert all(("cp311" in w or "abi3" in w) for w in binary)
    names = {w.split("-")[0].lower() for w in wheels}
    assert {"numpy", "opencv_python_headless", "ai_edge_litert", "onnxruntime", "cryptography", "gpiozero",
            "facegate"} <= names
    lock = (out / "requirements.lock").read_text().splitlines()
    assert len(lock) == len(wheels)
    for line in lock:  # every pinned hash is the hash of the shipped file
        name_ver, digest = line.split(" --hash=sha256:")
        match = [w for w in (out / "wheels").glob("*.whl") if sha256_of(w) == digest]
        assert len(match) == 1, line
    cfg = load_door_config(out / "config" / "door.toml")
    assert cfg.relay.kind == "gpiozero" and cfg.camera.source == "picamera2" and cfg.pipeline.threads == 4
    assert cfg.pipeline.embedder.startswith("/opt/facegate/models/")
    cards = [p for p in (out / "models").rglob("*.json")]
    assert len(cards) >= 7 and manifest["board"] == "rpi4"
    assert len(list((out / "selftest").glob("*/*"))) >= 4
    script = (out / "install.sh").read_text()
    assert "sha256sum --quiet -c SHA256SUMS" in script and "--require-hashes" in script
    assert "--system-site-packages" in script and "hardware selftest" in script
    assert json.loads((out / "manifest.json").read_text())["wheels"]


def test_bundle_tampering_is_refused(rpi4_bundle, tmp_path):
    import shutil

    from facegate.edge.errors import BundleError
    from facegate.hardware.bundle import verify_bundle
    out, _ = rpi4_bundle
    assert verify_bundle(out) > 20
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    wheel = next((copy / "wheels").glob("numpy-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[1000] ^= 0xFF
    wheel.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="numpy"):
        verify_bundle(copy)


def test_selftest_passes_on_the_bundle(rpi4_bundle, capsys):
    from facegate.apps.cli import main
    out, _ = rpi4_bundle
    assert main(["hardware", "selftest", "--bundle", str(out), "--relay", "mock"]) == 0
    text = capsys.readouterr().out
    assert "self-test PASSED (6/6 checks)" in text and "FAIL" not in text


def test_selftest_fails_on_a_corrupt_model(rpi4_bundle, tmp_path, capsys):
    import shutil

    from facegate.apps.cli import main
    out, _ = rpi4_bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    from facegate.edge.registry import DEFAULT_DETECTOR
    with open(copy / "models" / DEFAULT_DETECTOR / "onet.tflite", "ab") as fh:
        fh.write(b"x")
    assert main(["hardware", "selftest", "--bundle", str(copy)]) == 16
    assert "FAIL  model checksums" in capsys.readouterr().out


def test_bundle_takes_the_same_model_for_the_other_runtime(tmp_path):
    """A bundle carries the embedder in both runtimes' formats: same stem when exported that way,
    else the same model at the most exact precision there is (never another model)."""
    from facegate.hardware.bundle import runtime_siblings
    for name in ("student_fp16.tflite", "student_fp32.onnx", "student_int8.onnx", "teacher_fp32.tflite",
                 "teacher_fp32.onnx", "other_fp32.onnx"):
        (tmp_path / name).write_bytes(b"x")
    assert runtime_siblings(tmp_path / "student_fp16.tflite") == [tmp_path / "student_fp32.onnx"]
    assert runtime_siblings(tmp_path / "teacher_fp32.tflite") == [tmp_path / "teacher_fp32.onnx"]
    assert runtime_siblings(tmp_path / "student_int8.onnx") == [tmp_path / "student_fp16.tflite"]
    assert runtime_siblings(tmp_path / "other_fp32.onnx") == []             # no other .tflite of that model
    (tmp_path / "student_int8.tflite").write_bytes(b"x")
    assert runtime_siblings(tmp_path / "student_int8.onnx") == [tmp_path / "student_int8.tflite"]


def test_selftest_kills_an_unlocked_door_and_reads_the_line(monkeypatch):
    """The SIGKILL check end to end on gpiozero's mock pins (each process has its own mock line, so the
    parent reads a released line); and the verdict when the wiring leaves the line high. Pin 26: the
    door tests' relay holds GPIO17 of this process's mock factory."""
    from facegate.edge.door import relay as relay_module
    from facegate.hardware.selftest import killed_while_unlocked
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    ok, detail, _ = killed_while_unlocked("gpiozero", 26)
    assert ok and "line low" in detail
    monkeypatch.setattr(relay_module, "read_released_line", lambda kind, pin: True)
    ok, detail, _ = killed_while_unlocked("gpiozero", 26)
    assert not ok and "pull-down" in detail
    ok, detail, _ = killed_while_unlocked("nonsense", 26)
    assert not ok and "could not unlock" in detail
