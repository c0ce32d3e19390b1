"""Named models the harness can evaluate, or a path to a model file with its card.

`facenet-teacher` is the Keras teacher (rebuilt from the pinned h5 on first use). Later entries
(students, exports) are model files with cards and need no code here.
"""
from __future__ import annotations

from pathlib import Path

from facegate.edge.cards import InputSpec, load_card
from facegate.edge.downloads import FACENET_SDIST
from facegate.edge.embed import Embedder
from facegate.edge.errors import ModelError

#: how FaceNet's authors evaluated it: MTCNN box + 32 px margin, 160x160, per-image standardisation
FACENET_TEACHER_INPUT = InputSpec(size=160, normalisation="prewhiten", alignment="margin32")
EMBEDDERS = ("facenet-teacher",)


def resolve_embedder(spec: str, threads: int | None = None) -> Embedder:
    """An Embedder for a registered name or a model file (.tflite/.onnx/.keras with a card)."""
    if spec == "facenet-teacher":
        from facegate.convert.keras_backend import KerasBackend
        from facegate.convert.teachers.facenet import load_teacher
        return Embedder(KerasBackend(load_teacher()), FACENET_TEACHER_INPUT, "facenet-teacher",
                        identity=f"facenet-teacher:{FACENET_SDIST.sha256}")
    path = Path(spec)
    if not path.exists():
        raise ModelError(f"unknown model {spec!r}: not one of {', '.join(EMBEDDERS)} and no such file")
    if path.suffix == ".keras":
        import keras

        from facegate.convert.keras_backend import KerasBackend
        card = load_card(path)
        model = keras.saving.load_model(path, compile=False)
        return Embedder(KerasBackend(model), card.input, card.name, identity=f"{card.name}:{card.sha256}", card=card)
    return Embedder.from_file(path, threads=threads)
