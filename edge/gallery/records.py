"""The gallery's contents in memory: people, their templates (and optionally their face crops)."""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

import numpy as np

from facegate.edge.errors import CardChangedError, GalleryError, ModelMismatchError, PersonNotFoundError
from facegate.edge.gallery.projection import Projection

_log = logging.getLogger(__name__)

TEMPLATE_DTYPES = ("float32", "float16", "int8")


@dataclass(frozen=True)
class ModelBinding:
    """The embedding model a gallery's templates belong to. Templates of another model are
    meaningless to it, so the gallery refuses to mix them."""

    name: str
    sha256: str
    dim: int
    card_sha256: str = ""     # digest of the model card (thresholds); "" in galleries made before it was pinned

    @classmethod
    def for_embedder(cls, embedder) -> "ModelBinding":
        """The binding of the model an :class:`~facegate.edge.face.embed.Embedder` runs (from its card)."""
        from facegate.edge.cards import card_digest
        card = embedder.card
        return cls(card.name, card.sha256, int(card.embedding_dim or 0), card_digest(card))

    def check(self, other: "ModelBinding") -> None:
        """Refuse templates of another model, and a model whose card changed since enrolment: the card
        holds the thresholds that decide who gets in, so an edited card is as bad as a swapped model."""
        if (self.sha256, self.dim) != (other.sha256, other.dim):
            raise ModelMismatchError(
                f"this gallery was enrolled with model {self.name} ({self.sha256[:12]}..., {self.dim}-D) but "
                f"the pipeline uses {other.name} ({other.sha256[:12]}..., {other.dim}-D). Re-enroll everyone "
                "with the new model, or run `facegate gallery reembed` if the gallery keeps face crops.")
        if not self.card_sha256:
            _log.warning("this gallery predates model-card pinning: its thresholds are not checked against an "
                         "edited card. Run `facegate gallery rebind` once to pin the card in use.")
        elif other.card_sha256 and other.card_sha256 != self.card_sha256:
            raise CardChangedError(
                f"the model card of {other.name} changed since this gallery was enrolled (card "
                f"{other.card_sha256[:12]}..., gallery expects {self.card_sha256[:12]}...): its thresholds "
                "decide who gets in, so an edited card is refused. Copy the card again from the bundle; if it "
                "was recalibrated on purpose, run `facegate gallery rebind` with the gallery key.")


@dataclass
class Person:
    """One enrolled person. `id` is the gallery id used in audit logs instead of the name."""

    id: str
    name: str
    external_id: str | None = None
    valid_from: str | None = None    # ISO date/time; None: always
    valid_until: str | None = None
    groups: list[str] = field(default_factory=list)
    created: str = ""

    def valid_at(self, when: dt.datetime) -> bool:
        """Is this person allowed at `when` (naive local time or aware)?"""
        def parse(v: str) -> dt.datetime:
            t = dt.datetime.fromisoformat(v)
            return t.replace(tzinfo=when.tzinfo) if t.tzinfo is None else t
        if self.valid_from and when < parse(self.valid_from):
            return False
        if self.valid_until and when > parse(self.valid_until):
            return False
        return True


class Gallery:
    """People and templates; every mutation keeps `templates`, `owners` and `crops` aligned."""

    def __init__(self, binding: ModelBinding, template_dtype: str = "float32", keep_crops: bool = False,
                 projection: Projection | None = None) -> None:
        if template_dtype not in TEMPLATE_DTYPES:
            raise GalleryError(f"template dtype must be one of {TEMPLATE_DTYPES}")
        self.binding = binding
        self.template_dtype = template_dtype
        self.keep_crops = keep_crops
        self.projection: Projection | None = None
        self.people: dict[str, Person] = {}
        self.templates = np.zeros((0, binding.dim), np.float32)   # unit vectors, float32 in memory
        self.owners = np.zeros(0, np.int64)                        # index into person_order
        self.person_order: list[str] = []
        self.crops: list[bytes | None] = []                        # JPEG bytes per template
        if projection is not None:
            self.set_projection(projection)

    # -- template space -------------------------------------------------------------------------
    @property
    def template_dim(self) -> int:
        """Numbers per stored template: the embedder's dimension, or the PCA projection's."""
        return self.projection.dims if self.projection is not None else self.binding.dim

    def set_projection(self, projection: Projection) -> None:
        """Store every template PCA-reduced from now on (the current templates are projected; a gallery
        already projected cannot be projected again: its full templates are gone)."""
        if self.projection is not None:
            if self.projection.sha256 == projection.sha256:
                return
            raise GalleryError("this gallery's templates are already PCA-reduced with another projection; "
                               "re-embed from kept crops (`facegate gallery reembed`) to change it")
        if projection.model_sha256 != self.binding.sha256 or projection.input_dim != self.binding.dim:
            raise GalleryError(f"this PCA projection was fitted on another model's embeddings; fit one for "
                               f"{self.binding.name} with `facegate calibrate pca`")
        self.templates = projection.apply(self.templates) if len(self.templates) else \
            np.zeros((0, projection.dims), np.float32)
        self.projection = projection

    def to_template_space(self, vectors: np.ndarray) -> np.ndarray:
        """Embeddings (n, model dim) as this gallery stores them: projected when it has a projection."""
        v = np.asarray(vectors, np.float32).reshape(-1, self.binding.dim)
        return self.projection.apply(v) if self.projection is not None else v

    # -- people -----------------------------------------------------------------------------
    def find(self, name_or_id: str) -> Person:
        if name_or_id in self.people:
            return self.people[name_or_id]
        matches = [p for p in self.people.values() if p.name == name_or_id or p.external_id == name_or_id]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise PersonNotFoundError(f"no person named {name_or_id!r} in the gallery")
        raise GalleryError(f"{len(matches)} people are called {name_or_id!r}; use their gallery id")

    def add_person(self, name: str, external_id: str | None = None, valid_from: str | None = None,
                   valid_until: str | None = None, groups: list[str] | None = None) -> Person:
        if not name.strip():
            raise GalleryError("a person needs a non-empty name")
        if any(p.name == name for p in self.people.values()):
            raise GalleryError(f"a person called {name!r} is already enrolled; add templates to them instead")
        for v in (valid_from, valid_until):
            if v:
                try:
                    dt.datetime.fromisoformat(v)
                except ValueError as exc:
                    raise GalleryError(f"validity {v!r} is not an ISO date (YYYY-MM-DD[THH:MM])") from exc
        pid = secrets.token_hex(6)
        person = Person(pid, name, external_id, valid_from, valid_until, list(groups or []),
                        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        self.people[pid] = person
        self.person_order.append(pid)
        return person

    def add_templates(self, person_id: str, vectors: np.ndarray, crops: list[bytes] | None = None,
                      projected: bool = False) -> None:
        """Add embeddings of the model (or, with `projected`, templates already in this gallery's space)."""
        vectors = (np.asarray(vectors, np.float32).reshape(-1, self.template_dim) if projected
                   else self.to_template_space(vectors))
        if person_id not in self.people:
            raise PersonNotFoundError(f"no person with id {person_id}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise GalleryError("refusing to store non-finite or zero templates")
        idx = self.person_order.index(person_id)
        self.templates = np.concatenate([self.templates, vectors / norms])
        self.owners = np.concatenate([self.owners, np.full(len(vectors), idx, np.int64)])
        if self.keep_crops:
            if crops is None or len(crops) != len(vectors):
                raise GalleryError("this gallery keeps face crops: give one crop per template")
            self.crops.extend(crops)
        else:
            self.crops.extend([None] * len(vectors))

    def remove(self, name_or_id: str) -> Person:
        person = self.find(name_or_id)
        idx = self.person_order.index(person.id)
        keep = self.owners != idx
        self.templates, self.crops = self.templates[keep], [c for c, k in zip(self.crops, keep) if k]
        owners = self.owners[keep]
        self.owners = np.where(owners > idx, owners - 1, owners)
        self.person_order.pop(idx)
        del self.people[person.id]
        return person

    def rename(self, name_or_id: str, new_name: str) -> Person:
        person = self.find(name_or_id)
        if any(p.name == new_name and p.id != person.id for p in self.people.values()):
            raise GalleryError(f"a person called {new_name!r} already exists")
        person.name = new_name
        return person

    def template_count(self, person_id: str) -> int:
        return int(np.sum(self.owners == self.person_order.index(person_id)))

    def owner_ids(self) -> list[str]:
        return [self.person_order[i] for i in self.owners]

    def replace_templates(self, vectors: np.ndarray, binding: ModelBinding,
                          projection: Projection | None = None) -> None:
        """Swap every template for one of a new model (re-embedding from kept crops); a projection of the
        old model is dropped, `projection` (fitted on the new one) applied."""
        if len(vectors) != len(self.templates):
            raise GalleryError("re-embedding must produce one template per stored crop")
        self.binding = binding
        self.projection = None
        v = np.asarray(vectors, np.float32)
        self.templates = v / np.linalg.norm(v, axis=1, keepdims=True)
        if projection is not None:
            self.set_projection(projection)
