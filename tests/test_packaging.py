"""The distribution layout: every package folder is installed, and edge never needs TensorFlow."""
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    data_only = {pkg for pkg in listed - found if _folder(pkg, mapping).is_dir() and not any(_folder(pkg, mapping).rglob("*.py"))}
    assert found == listed - data_only, f"missing from pyproject: {found - listed}; stale: {listed - found - data_only}"


def _folder(pkg: str, mapping: dict[str, str]) -> Path:
    top = next(p for p in sorted(mapping, key=len, reverse=True) if pkg == p or pkg.startswith(p + "."))
    return ROOT / mapping[top] / Path(*pkg[len(top) + 1:].split(".")) if pkg != top else ROOT / mapping[top]


def test_edge_runs_without_tensorflow(tmp_path):
    """Block tensorflow/keras imports, then load the committed detector and detect a face."""
    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import numpy as np, cv2
from facegate.edge.registry import load_detector
from facegate.edge.face import align, embed
from facegate.edge import cards, images, downloads
img = np.full((200, 200, 3), 255, np.uint8)
for suffix in ('tflite', 'onnx'):
    det = load_detector('mtcnn-teacher', fmt=suffix)
    assert det.detect(img) == []
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
