"""Model cards: the JSON sidecar that travels with every model file (`<file>.json`).

A card says how to feed the model (input size, layout, colour order, normalisation), what comes
out, which thresholds to use, how accurate it measured and with which command, and the file's
sha256. Loading a model through its card verifies the checksum, so a truncated copy or a swapped
file on a board is refused instead of producing wrong decisions.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facegate.edge.downloads import sha256_of
from facegate.edge.errors import ChecksumError, ModelError

CARD_SCHEMA_VERSION = 1
NORMALISATIONS = ("prewhiten", "mean127.5_div128", "div255", "none")


@dataclass
class InputSpec:
    """How an image must be prepared for the model."""

    size: int                      # square side in pixels (0: any size, e.g. P-Net)
    layout: str = "NHWC"
    color: str = "RGB"
    normalisation: str = "mean127.5_div128"
    alignment: str = "none"        # 'similarity112', 'similarity160', 'margin32', 'none'

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ModelError(f"unknown normalisation {self.normalisation!r}; known: {NORMALISATIONS}")


@dataclass
class ModelCard:
    """Everything the edge runtime needs to know about one model file."""

    name: str
    task: str                      # 'embedding', 'mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet'
    file: str                      # file name, relative to the card
    sha256: str
    input: InputSpec
    outputs: list[dict[str, Any]] = field(default_factory=list)
    version: str = "1"
    format: str = ""               # 'tflite', 'onnx', 'coreml', 'keras'
    quantization: str = "fp32"
    metric: str | None = None      # 'cosine' for embedders
    thresholds: dict[str, float] = field(default_factory=dict)   # target FAR -> score threshold
    accuracy: dict[str, Any] = field(default_factory=dict)       # measured numbers with their command
    teacher: str | None = None
    source: str = ""
    notes: str = ""
    schema: int = CARD_SCHEMA_VERSION

    @property
    def embedding_dim(self) -> int | None:
        for out in self.outputs:
            if "dim" in out:
                return int(out["dim"])
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        data = dict(data)
        try:
            data["input"] = InputSpec(**data["input"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model card is missing or has unknown fields: {exc}") from exc


def card_path(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def write_card(card: ModelCard, model_path: str | Path) -> Path:
    """Write the card beside its model, with the checksum of the file as it is now."""
    model_path = Path(model_path)
    card.file = model_path.name
    card.sha256 = sha256_of(model_path) if model_path.is_file() else _dir_digest(model_path)
    out = card_path(model_path)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(card.to_json())
    os.replace(tmp, out)
    return out


def _dir_digest(path: Path) -> str:
    """Checksum of a model stored as a folder (.mlpackage, SavedModel): sha256 over sorted files."""
    import hashlib
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(sha256_of(f).encode())
    return h.hexdigest()


def load_card(model_path: str | Path, verify: bool = True) -> ModelCard:
    """Read a model's card and (by default) refuse the model if its sha256 does not match."""
    model_path = Path(model_path)
    cpath = card_path(model_path)
    if not cpath.exists():
        raise ModelError(f"no model card beside {model_path} (expected {cpath.name})")
    try:
        card = ModelCard.from_dict(json.loads(cpath.read_text()))
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {cpath} is not valid JSON: {exc}") from exc
    if verify:
        if not model_path.exists():
            raise ModelError(f"model file not found: {model_path}")
        actual = sha256_of(model_path) if model_path.is_file() else _dir_digest(model_path)
        if actual != card.sha256:
            raise ChecksumError(
                f"{model_path.name} does not match its card: sha256 {actual[:16]}... but the card says "
                f"{card.sha256[:16]}... The file is corrupt or was replaced; copy it again from the bundle.")
    return card
