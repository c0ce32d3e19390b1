"""ONNX Runtime's OpenVINO execution provider: asked for as the backend `onnxruntime-openvino`, it runs the
student like the CPU provider; where this ONNX Runtime lacks it, the model runs on the CPU provider, the
backend says so by its name, and the log says how to install it.

The OpenVINO build (`onnxruntime-openvino`) installs the same `onnxruntime` module as the plain build, so it
cannot share the test environment: `.ci/run` installs it into `.venv-openvino` (facegate without its
dependencies, numpy, the OpenVINO build) and the comparison runs there in a subprocess."""
import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facegate.edge.backends import load_backend, suffix_for_backend

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "edge" / "models" / "facenet-student"


def openvino_python() -> Path | None:
    text = os.environ.get("FACEGATE_OPENVINO_PYTHON")
    path = Path(text) if text else ROOT / ".venv-openvino" / "bin" / "python"
    return path if path.exists() else None


def face_crops(lfw_dir, n: int = 12) -> np.ndarray:
    """Centre crops of real LFW faces, normalised as the student's card says (mean 127.5, / 128)."""
    import cv2
    files = sorted((lfw_dir / "images").glob("A*/*.jpg"))[:n]
    crops = np.stack([cv2.resize(cv2.imread(str(f))[68:182, 68:182, ::-1], (112, 112)) for f in files])
    return (crops.astype(np.float32) - 127.5) / 128.0


def embed(backend, x: np.ndarray) -> np.ndarray:
    y = np.concatenate([backend.run([x[i:i + 1]])[0] for i in range(len(x))])
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_backend_names_for_onnx_providers():
    assert suffix_for_backend("onnxruntime-openvino") == ".onnx" == suffix_for_backend("onnxruntime-tensorrt")
    from facegate.edge.errors import ModelError
    with pytest.raises(ModelError, match="onnxruntime-openvino"):
        suffix_for_backend("openvino")


def test_without_the_openvino_build_the_model_runs_on_cpu_and_says_so(lfw_dir, caplog):
    import onnxruntime as ort
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has OpenVINO: nothing to fall back from")
    x = face_crops(lfw_dir, 4)
    with caplog.at_level(logging.WARNING, logger="facegate.edge.backends.onnxrt"):
        asked = load_backend(STUDENT / "facenet-student_fp32.onnx", backend="onnxruntime-openvino", threads=1)
    assert asked.name == "onnxruntime" and asked.providers == ["CPUExecutionProvider"]
    assert "OpenVINOExecutionProvider is not in this ONNX Runtime build" in caplog.text
    assert "pip install 'facegate[openvino]'" in caplog.text
    cpu = load_backend(STUDENT / "facenet-student_fp32.onnx", backend="onnxruntime", threads=1)
    np.testing.assert_allclose(embed(asked, x), embed(cpu, x), atol=1e-6)


SCRIPT = """
import json, sys
import numpy as np
from facegate.edge.backends import load_backend
x = np.load(sys.argv[1])
out = {}
for name in ("facenet-student_fp32.onnx", "facenet-student_int8.onnx"):
    b = load_backend(sys.argv[2] + "/" + name, backend="onnxruntime-openvino", threads=1)
    y = np.concatenate([b.run([x[i:i + 1]])[0] for i in range(len(x))])
    out[name] = {"backend": b.name, "providers": b.providers, "vectors": (y / np.linalg.norm(y, axis=1, keepdims=True)).tolist()}
print(json.dumps(out))
"""


def test_the_openvino_provider_runs_the_student_like_the_cpu_provider(lfw_dir, tmp_path):
    python = openvino_python()
    if python is None:
        pytest.skip("no environment with onnxruntime-openvino (.ci/run makes .venv-openvino; or set "
                    "FACEGATE_OPENVINO_PYTHON)")
    x = face_crops(lfw_dir)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([str(python), "-c", SCRIPT, str(tmp_path / "x.npy"), str(STUDENT)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    fp32 = embed(load_backend(STUDENT / "facenet-student_fp32.onnx", backend="onnxruntime", threads=1), x)
    int8_cpu = embed(load_backend(STUDENT / "facenet-student_int8.onnx", backend="onnxruntime", threads=1), x)
    for name in got:
        assert got[name]["backend"] == "onnxruntime-openvino"
        assert got[name]["providers"][0] == "OpenVINOExecutionProvider"
    ov32 = np.array(got["facenet-student_fp32.onnx"]["vectors"])
    assert np.sum(ov32 * fp32, axis=1).min() > 0.9999          # float: the same embeddings
    ov8 = np.array(got["facenet-student_int8.onnx"]["vectors"])
    # int8: OpenVINO's integer kernels round differently from ORT's; as close to the float model as ORT's int8
    assert np.sum(ov8 * fp32, axis=1).mean() > np.sum(int8_cpu * fp32, axis=1).mean() - 0.01


def test_an_onnx_backend_without_an_embedder_runs_the_committed_onnx_student():
    """`[pipeline] backend = "onnxruntime-openvino"` alone must not try to open the default .tflite file."""
    from facegate.edge.registry import MODELS_DIR, default_embedder_path, get_embedder
    assert default_embedder_path().suffix == ".tflite"
    assert default_embedder_path("onnxruntime-openvino") == MODELS_DIR / "facenet-student/facenet-student_fp32.onnx"
    emb = get_embedder(None, threads=1, backend="onnxruntime-openvino")
    assert emb.backend.name.startswith("onnxruntime") and emb.card.name.startswith("facenet-student")
    assert get_embedder(None, threads=1, backend="litert").backend.name == "litert"
