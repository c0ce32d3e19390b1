"""Named models the harness can evaluate, or a path to a model file with its card.

`facenet-teacher` is the Keras teacher (rebuilt from the pinned h5 on first use). Later entries
(students, exports) are model files with cards and need no code here.
"""
from __future__ import annotations

import json
from pathlib import Path

from facegate.edge.cards import ModelCard, load_card
from facegate.edge.downloads import FACENET_SDIST
from facegate.edge.embed import Embedder
from facegate.edge.errors import ModelError

#: the teacher's card (input recipe, calibrated thresholds, measured accuracy with commands); its
#: sha256 is the pinned sdist's, since the .keras file is rebuilt locally
FACENET_TEACHER_CARD = Path(__file__).resolve().parent / "teachers" / "facenet_teacher.card.json"
EMBEDDERS = ("facenet-teacher",)


def facenet_teacher_card() -> ModelCard:
    return ModelCard.from_dict(json.loads(FACENET_TEACHER_CARD.read_text()))


def resolve_embedder(spec: str, threads: int | None = None) -> Embedder:
    """An Embedder for a registered name or a model file (.tflite/.onnx/.keras with a card)."""
    if spec == "facenet-teacher":
        from facegate.convert.keras_backend import KerasBackend
        from facegate.convert.teachers.facenet import load_teacher
        card = facenet_teacher_card()
        return Embedder(KerasBackend(load_teacher()), card.input, "facenet-teacher",
                        identity=f"facenet-teacher:{FACENET_SDIST.sha256}", card=card)
    path = Path(spec)
    if not path.exists():
        raise ModelError(f"unknown model {spec!r}: not one of {', '.join(EMBEDDERS)} and no such file")
    if path.suffix == ".keras":
        import keras

        from facegate.convert.keras_backend import KerasBackend
        from facegate.convert.teachers.facenet import ScaleSum  # pruned teachers contain it
        card = load_card(path)
        model = keras.saving.load_model(path, compile=False, custom_objects={"ScaleSum": ScaleSum})
        return Embedder(KerasBackend(model), card.input, card.name, identity=f"{card.name}:{card.sha256}", card=card)
    return Embedder.from_file(path, threads=threads)
