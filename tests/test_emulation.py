"""The rpi4 bundle's self-test passes on emulated aarch64 (qemu-user + an arm64 Debian root).

These download about 1.5 GB of Debian arm64 packages and run for minutes under emulation, so they run
only where asked for: FACEGATE_EMULATION=1 (CI sets it; .ci/run installs the emulators).
"""
import os
import shutil

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("FACEGATE_EMULATION") != "1",
                                 reason="emulated aarch64 runs only where asked for: FACEGATE_EMULATION=1")]


@pytest.mark.skipif(not shutil.which("qemu-aarch64-static") or not (shutil.which("debootstrap") or
                    shutil.os.path.exists("/usr/sbin/debootstrap")),
                    reason="needs qemu-user-static and debootstrap (apt-get install qemu-user-static debootstrap)")
def test_selftest_passes_on_emulated_aarch64(embedder_path):
    from facegate.hardware.emulate import run_emulated_selftest
    r = run_emulated_selftest("rpi4", timeout_s=1200)
    assert r["passed"], r["report"] + r["stderr_tail"]
    assert "self-test PASSED (6/6 checks)" in r["report"]
    assert "(tflite-runtime)" in r["report"]  # the models really ran on the aarch64 interpreter


@pytest.mark.skipif(not shutil.which("qemu-system-aarch64") or not shutil.which("cpio") or
                    not shutil.which("apt-get"),
                    reason="needs qemu-system-arm, cpio and apt (apt-get install qemu-system-arm cpio)")
def test_litert_and_onnxruntime_on_full_system_aarch64(embedder_path, tmp_path):
    """The rpi4 bundle's own wheels (numpy 2, ai-edge-litert, onnxruntime) under qemu-system-aarch64."""
    from facegate.hardware.bundle import build_bundle, runtime_siblings
    from facegate.hardware.emulate import run_system_selftest
    (onnx,) = runtime_siblings(embedder_path)          # the default student: fp16 .tflite -> fp32 .onnx
    assert onnx.suffix == ".onnx"
    bundle = tmp_path / "bundle"
    build_bundle("rpi4", bundle, embedder_path)
    assert (bundle / "models" / onnx.name).exists()
    r = run_system_selftest("rpi4", bundle, timeout_s=2400)
    for backend in ("litert", "onnxruntime"):
        res = r["backends"][backend]
        assert res["passed"], f"{backend}: {res['report']}{res['tail']}"
        assert f"({backend})" in res["report"] and "6/6" in res["report"]
