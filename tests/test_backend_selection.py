"""Backend choice by file type and availability, legacy tflite-runtime handling, ORT providers."""
import sys
import types

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as _LiteRTInterpreter
from conftest import TEACHER_DETECTOR

from facegate.edge import backends
from facegate.edge.errors import BackendUnavailableError, ModelError


def test_tflite_runtime_missing_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(BackendUnavailableError, match=r"facegate\[legacy\]"):
        backends.load_backend(TEACHER_DETECTOR / "pnet.tflite", backend="tflite-runtime")


def _fake_tflite_runtime(monkeypatch):
    """A stand-in `tflite_runtime` package backed by LiteRT's interpreter (same API)."""
    pkg = types.ModuleType("tflite_runtime")
    mod = types.ModuleType("tflite_runtime.interpreter")
    mod.Interpreter = _LiteRTInterpreter
    pkg.interpreter = mod
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", mod)


def test_tflite_runtime_refuses_numpy2(monkeypatch):
    _fake_tflite_runtime(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="numpy < 2"):
        backends.load_backend(TEACHER_DETECTOR / "onet.tflite", backend="tflite-runtime")


def test_tflite_runtime_code_path_runs_with_numpy1(monkeypatch):
    _fake_tflite_runtime(monkeypatch)
    monkeypatch.setattr(np, "__version__", "1.26.4")
    be = backends.load_backend(TEACHER_DETECTOR / "onet.tflite", backend="tflite-runtime")
    assert be.name == "tflite-runtime"
    x = np.random.default_rng(0).normal(size=(2, 48, 48, 3)).astype(np.float32)
    ref = backends.load_backend(TEACHER_DETECTOR / "onet.tflite").run([x])
    for a, b in zip(be.run([x]), ref):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_falls_back_to_next_installed_runtime(monkeypatch):
    """With LiteRT missing, a .tflite goes to tflite-runtime; with neither, the error names both."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(BackendUnavailableError) as err:
        backends.load_backend(TEACHER_DETECTOR / "pnet.tflite")
    assert "ai-edge-litert" in str(err.value) and "tflite-runtime" in str(err.value)
    _fake_tflite_runtime(monkeypatch)
    monkeypatch.setattr(np, "__version__", "1.26.4")
    assert backends.load_backend(TEACHER_DETECTOR / "pnet.tflite").name == "tflite-runtime"


def test_onnx_providers_and_threads():
    be = backends.load_backend(TEACHER_DETECTOR / "rnet.onnx", threads=1, providers="tensorrt")
    out = be.run([np.zeros((1, 24, 24, 3), np.float32)])  # falls back to CPU where TensorRT is absent
    assert out[1].shape == (1, 2)
    options = be._sess.get_session_options()
    assert options.intra_op_num_threads == 1
    # pool threads sleep when idle: three spinning cascade sessions starved each other on 2 cores
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ModelError, match="providers"):
        backends.load_backend(TEACHER_DETECTOR / "rnet.onnx", providers="npu")
