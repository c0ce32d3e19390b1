"""The models only a workstation can run, served to :func:`facegate.edge.registry.get_embedder` through
the `facegate.embedders` entry point: `facenet-teacher` (the Keras teacher, rebuilt from the pinned h5 on
first use) and `.keras` files with their cards. Model files with cards (.tflite, .onnx) need no code here.
"""
from __future__ import annotations

import json
from pathlib import Path

from facegate.edge.cards import ModelCard, load_card
from facegate.edge.downloads import FACENET_SDIST
from facegate.edge.errors import ModelError
from facegate.edge.face.embed import Embedder

#: the teacher's card (input recipe, calibrated thresholds, measured accuracy with commands); its
#: sha256 is the pinned sdist's, since the .keras file is rebuilt locally
FACENET_TEACHER_CARD = Path(__file__).resolve().parent / "teachers" / "facenet_teacher.card.json"


def facenet_teacher_card() -> ModelCard:
    return ModelCard.from_dict(json.loads(FACENET_TEACHER_CARD.read_text()))


def keras_embedder(spec: str, threads: int | None = None) -> Embedder | None:
    """The `facegate.embedders` provider of this package (see :func:`facegate.edge.registry.get_embedder`):
    the Keras FaceNet teacher by name, or a `.keras` file with its card; None for anything else."""
    if spec == "facenet-teacher":
        from facegate.convert.keras_backend import KerasBackend
        from facegate.convert.teachers.facenet import load_teacher
        card = facenet_teacher_card()
        return Embedder(KerasBackend(load_teacher()), card.input, "facenet-teacher",
                        identity=f"facenet-teacher:{FACENET_SDIST.sha256}", card=card)
    path = Path(spec)
    if path.suffix != ".keras":
        return None
    if not path.exists():
        raise ModelError(f"no such model file: {path}")
    import keras

    from facegate.convert.keras_backend import KerasBackend
    from facegate.convert.teachers.facenet import ScaleSum  # pruned teachers contain it
    card = load_card(path)
    model = keras.saving.load_model(path, compile=False, custom_objects={"ScaleSum": ScaleSum})
    return Embedder(KerasBackend(model), card.input, card.name, identity=f"{card.name}:{card.sha256}", card=card)
