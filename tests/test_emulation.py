"""The rpi4 bundle's self-test passes on emulated aarch64 (qemu-user + an arm64 Debian root)."""
import shutil

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not shutil.which("qemu-aarch64-static") or not (shutil.which("debootstrap") or
                    shutil.os.path.exists("/usr/sbin/debootstrap")),
                    reason="needs qemu-user-static and debootstrap (apt-get install qemu-user-static debootstrap)")
def test_selftest_passes_on_emulated_aarch64(embedder_path):
    from facegate.hardware.emulate import run_emulated_selftest
    r = run_emulated_selftest("rpi4", timeout_s=1200)
    assert r["passed"], r["report"] + r["stderr_tail"]
    assert "self-test PASSED (6/6 checks)" in r["report"]
    assert "(tflite-runtime)" in r["report"]  # the models really ran on the aarch64 interpreter
