"""Model cards: the JSON sidecar that travels with every model file (`<file>.json`).

A card says how to feed the model (input size, layout, colour order, normalisation), what comes
out, which thresholds to use, how accurate it measured and with which command, and the file's
sha256. Loading a model through its card verifies the checksum, so a truncated copy or a swapped
file on a board is refused instead of producing wrong decisions.
"""
from __future__ import annotations

import hashlib
import json
import math
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
    crop_scale: float = 0.0        # liveness nets: crop side = this x the face box, around its centre

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ModelError(f"unknown normalisation {self.normalisation!r}; known: {NORMALISATIONS}")
        if self.color not in ("RGB", "BGR"):
            raise ModelError(f"input color must be RGB or BGR, not {self.color!r}")
        if not isinstance(self.crop_scale, (int, float)) or isinstance(self.crop_scale, bool) or \
                not (self.crop_scale == 0 or 1 <= self.crop_scale <= 10):
            raise ModelError("input crop_scale must be 0 (no box crop) or between 1 and 10")


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
        if not isinstance(data, dict) or not isinstance(data.get("input"), dict):
            raise ModelError("model card must be a JSON object with an \"input\" object")
        data = dict(data)
        try:
            data["input"] = InputSpec(**data["input"])
            card = cls(**data)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model card is missing or has unknown fields: {exc}") from exc
        card.validate()
        return card

    def validate(self) -> None:
        """Refuse a card whose fields cannot be what a calibrated model says: wrong types, a checksum that
        is not one, and thresholds outside (0, 1) or out of order (a lower FAR needs a higher threshold).
        A threshold of 0 or below would accept faces unrelated to the template."""
        for name in ("name", "task", "file", "sha256", "version", "format", "quantization", "source", "notes"):
            if not isinstance(getattr(self, name), str):
                raise ModelError(f"model card field {name!r} must be a string")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ModelError("model card field 'sha256' must be 64 lowercase hex digits")
        if not isinstance(self.input.size, int) or isinstance(self.input.size, bool) or not 0 <= self.input.size <= 4096:
            raise ModelError("model card input size must be an integer from 0 to 4096")
        if not isinstance(self.outputs, list) or not all(isinstance(o, dict) for o in self.outputs):
            raise ModelError("model card 'outputs' must be a list of objects")
        for out in self.outputs:
            dim = out.get("dim", 1)
            if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 4096:
                raise ModelError("model card output 'dim' must be an integer from 1 to 4096")
        if not isinstance(self.thresholds, dict) or not isinstance(self.accuracy, dict):
            raise ModelError("model card 'thresholds' and 'accuracy' must be objects")
        for key, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
                raise ModelError(f"model card threshold {key!r} is {value!r}: a calibrated threshold lies "
                                 "between 0 and 1 (exclusive). The card was edited or damaged; copy it again "
                                 "from the bundle.")
        if self.task == "embedding":
            self._check_far_table()

    def _check_far_table(self) -> None:
        """An embedder's thresholds are keyed by false accept rate; a lower FAR needs a higher threshold."""
        by_far = []
        for far, value in self.thresholds.items():
            try:
                rate = float(far)
            except ValueError:
                rate = math.nan
            if not 0 < rate < 1:
                raise ModelError(f"model card threshold key {far!r} must be a false accept rate between 0 and 1")
            by_far.append((rate, float(value)))
        by_far.sort()
        for (rate_lo, t_lo), (rate_hi, t_hi) in zip(by_far, by_far[1:]):
            if t_lo < t_hi:
                raise ModelError(f"model card thresholds are out of order: FAR {rate_lo:g} has {t_lo} but the "
                                 f"looser FAR {rate_hi:g} has the higher {t_hi}")


def card_digest(card: ModelCard) -> str:
    """sha256 of everything the card says (canonical JSON): a gallery pins it next to the model's
    sha256, so an edited card (thresholds above all) is refused like a swapped model."""
    return hashlib.sha256(json.dumps(asdict(card), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
        card = ModelCard.from_dict(json.loads(cpath.read_bytes().decode("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"model card {cpath} is not valid JSON: {exc}") from exc
    except ModelError as exc:
        raise ModelError(f"{cpath}: {exc}") from exc
    except OSError as exc:
        raise ModelError(f"model card {cpath} cannot be read: {exc.strerror}") from exc
    if verify:
        if not model_path.exists():
            raise ModelError(f"model file not found: {model_path}")
        actual = sha256_of(model_path) if model_path.is_file() else _dir_digest(model_path)
        if actual != card.sha256:
            raise ChecksumError(
                f"{model_path.name} does not match its card: sha256 {actual[:16]}... but the card says "
                f"{card.sha256[:16]}... The file is corrupt or was replaced; copy it again from the bundle.")
    return card
