"""facegate.edge: the on-device face pipeline and door unit. Imports nothing from TensorFlow, ever.

The runtime loads model files (TFLite, ONNX) through small backend modules, runs the MTCNN cascade in
numpy/OpenCV, aligns faces and embeds them (`face/`), matches them against the encrypted gallery
(`gallery/`) and runs the door unit (`door/`). The names most programs need are importable from here::

    from facegate.edge import Pipeline, load_rgb
    from facegate.edge import GalleryStore, KeySource, Matcher, thresholds_from_card

They are resolved on first use, so importing one submodule (say `facegate.edge.errors`) stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_PUBLIC: dict[str, str] = {
    "Pipeline": "facegate.edge.face.pipeline",
    "PipelineConfig": "facegate.edge.face.pipeline",
    "Embedder": "facegate.edge.face.embed",
    "QualityConfig": "facegate.edge.face.quality",
    "load_rgb": "facegate.edge.images",
    "get_embedder": "facegate.edge.registry",
    "load_detector": "facegate.edge.registry",
    "load_liveness": "facegate.edge.registry",
    "GalleryStore": "facegate.edge.gallery",
    "KeySource": "facegate.edge.gallery",
    "Matcher": "facegate.edge.gallery",
    "Decision": "facegate.edge.gallery",
    "ModelBinding": "facegate.edge.gallery",
    "thresholds_from_card": "facegate.edge.gallery",
    "FacegateError": "facegate.edge.errors",
    "NoFaceError": "facegate.edge.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facegate.edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
