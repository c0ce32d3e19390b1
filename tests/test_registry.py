"""One way to obtain an embedder, by name or path: committed names and files open in the edge runtime,
workstation models come through the `facegate.embedders` entry point, anything else is a clear error."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegate.edge.errors import ModelError
from facegate.edge.registry import MODELS_DIR, default_embedder_path, get_embedder


def test_default_name_and_path_give_the_same_model():
    by_default, by_name = get_embedder(), get_embedder("facenet-student")
    by_path = get_embedder(str(default_embedder_path()))
    assert by_default.identity == by_name.identity == by_path.identity
    crop = np.random.default_rng(0).integers(0, 255, (1, 112, 112, 3), dtype=np.uint8)
    assert np.allclose(by_default.embed(crop), by_path.embed(crop), atol=1e-6)


def test_unknown_names_and_missing_files_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'facenet-studnet'") as exc:
        get_embedder("facenet-studnet")
    assert exc.value.exit_code == 4
    with pytest.raises(ModelError):
        get_embedder(tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="no such model file"):
        get_embedder(tmp_path / "missing.keras")


def test_keras_files_come_from_the_convert_provider():
    pytest.importorskip("keras")
    emb = get_embedder(Path(__file__).resolve().parents[1] / "convert/students/weights/facenet-student.keras")
    assert emb.backend.name == "keras" and emb.card.embedding_dim == 128


def test_without_tensorflow_the_teacher_is_a_clear_model_error():
    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked ' + name, name=name)
sys.meta_path.insert(0, Block())
from facegate.edge.errors import ModelError
from facegate.edge.registry import get_embedder
try:
    get_embedder('facenet-teacher')
except ModelError as exc:
    print('ModelError:', exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=MODELS_DIR)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ModelError:" in out.stdout and "facegate[convert]" in out.stdout
