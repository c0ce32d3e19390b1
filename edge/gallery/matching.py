"""1:1 verification and 1:N identification against the gallery, with graded decisions.

Scores are cosine similarities of unit vectors: one matrix product over every template, then the
best template per person. Thresholds come from the embedder's card (keyed by target false accept
rate). The decision is graded, as a door needs it: *accept* above the strict threshold, *retry*
(ask the person to look at the camera again) between the strict and a looser threshold, *reject*
below. Validity windows and door groups can turn an accept into a reject, with the reason.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from facegate.edge.errors import GalleryError, ModelError
from facegate.edge.gallery import int8_scoring
from facegate.edge.gallery.records import Gallery

#: below this many int8 templates the float product is already sub-millisecond and the ONNX Runtime
#: session (built per gallery snapshot) is not worth building
INT8_SCORER_MIN_TEMPLATES = 4096


class Decision(str, Enum):
    ACCEPT = "accept"
    RETRY = "retry"
    REJECT = "reject"


@dataclass
class MatchResult:
    decision: Decision
    person_id: str | None
    name: str | None
    score: float
    accept_threshold: float
    retry_threshold: float
    candidates: list[tuple[str, str, float]] = field(default_factory=list)  # (id, name, score), best first
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"decision": self.decision.value, "person_id": self.person_id, "name": self.name,
                "score": round(self.score, 4), "accept_threshold": self.accept_threshold,
                "retry_threshold": self.retry_threshold,
                "candidates": [{"id": i, "name": n, "score": round(s, 4)} for i, n, s in self.candidates],
                "reasons": self.reasons}


def thresholds_from_card(thresholds: dict[str, float], far: str = "1e-3", retry_far: str = "1e-2") -> tuple[float, float]:
    """(accept, retry) thresholds from a card's FAR-keyed table."""
    if far not in thresholds:
        raise ModelError(f"the model card has no threshold for FAR {far}; it has: {', '.join(thresholds) or 'none'}. "
                         "Calibrate it with `facegate calibrate thresholds`.")
    accept = float(thresholds[far])
    retry = float(thresholds.get(retry_far, accept))
    return accept, min(retry, accept)


def gallery_thresholds(gallery: Gallery, card_thresholds: dict[str, float], far: str = "1e-3",
                       retry_far: str = "1e-2") -> tuple[float, float]:
    """(accept, retry) for matching against `gallery`: its PCA projection's own table when its templates
    are reduced (cosines in the reduced space are other numbers), else the embedder card's."""
    if gallery.projection is not None:
        if far not in gallery.projection.thresholds:
            raise ModelError(f"this gallery's PCA projection has no threshold for FAR {far}; it has: "
                             f"{', '.join(gallery.projection.thresholds) or 'none'}. Fit it again with "
                             "`facegate calibrate pca`.")
        return thresholds_from_card(gallery.projection.thresholds, far, retry_far)
    return thresholds_from_card(card_thresholds, far, retry_far)


class Matcher:
    """Scores probes against a gallery snapshot (rebuild it after the gallery changes)."""

    def __init__(self, gallery: Gallery, accept_threshold: float, retry_threshold: float | None = None,
                 ambiguity_margin: float = 0.03, int8_scorer: bool | None = None) -> None:
        """`int8_scorer`: rank an int8 gallery's templates with the integer product
        (:mod:`~facegate.edge.gallery.int8_scoring`); default: for int8 galleries of at least
        INT8_SCORER_MIN_TEMPLATES templates when ONNX Runtime is installed."""
        self.gallery = gallery
        self.accept = float(accept_threshold)
        self.retry = float(accept_threshold if retry_threshold is None else min(retry_threshold, accept_threshold))
        self.margin = ambiguity_margin
        order = np.argsort(gallery.owners, kind="stable")
        # one contiguous float32 matrix, rows grouped by person, built once per gallery snapshot
        self._matrix = np.ascontiguousarray(gallery.templates[order], np.float32)
        self._row_owner = np.asarray(gallery.owners[order], np.int64)
        owners = self._row_owner
        self._starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(owners) else np.zeros(0, int)
        self._person_idx = owners[self._starts] if len(owners) else np.zeros(0, int)
        self._ends = np.r_[self._starts[1:], len(owners)] if len(owners) else np.zeros(0, int)
        self._most_templates = int((self._ends - self._starts).max()) if len(owners) else 0
        if int8_scorer is None:
            int8_scorer = (gallery.template_dtype == "int8" and len(owners) >= INT8_SCORER_MIN_TEMPLATES
                           and int8_scoring.available())
        self._int8: int8_scoring.Int8Scorer | None = None
        if int8_scorer and len(owners):
            self._int8 = int8_scoring.Int8Scorer(*int8_scoring.quantize_rows(self._matrix))
            # the codes are the templates now: the float copy would hold four times their memory for nothing
            self._matrix = np.zeros((0, self._matrix.shape[1]), np.float32)
        self._count = len(owners)

    @property
    def int8_kernel(self) -> str | None:
        """The ONNX Runtime kernel that ranks this int8 gallery (None: the float product)."""
        return self._int8.kernel if self._int8 is not None else None

    def _unit_probe(self, probe: np.ndarray) -> np.ndarray:
        """The probe as a unit vector in the gallery's template space (an embedding of the model is
        projected when the templates are PCA-reduced)."""
        probe = np.asarray(probe, np.float32).reshape(-1)
        projection = self.gallery.projection
        if projection is not None:
            if probe.shape[0] != projection.input_dim:
                raise GalleryError(f"probe has {probe.shape[0]} dimensions, the model's embeddings "
                                   f"{projection.input_dim}")
            return projection.apply(probe)[0]
        if probe.shape[0] != self._matrix.shape[1]:
            raise GalleryError(f"probe has {probe.shape[0]} dimensions, gallery templates {self._matrix.shape[1]}")
        return probe / max(float(np.linalg.norm(probe)), 1e-10)

    def top_people(self, probe: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """(person index, best cosine) of the `top_k` best-scoring people, best first."""
        if self._count == 0:
            return []
        unit = self._unit_probe(probe)
        if self._int8 is not None:
            return self._top_int8(self._int8.ranking_scores(unit)[0], unit, top_k)
        return self._top_from_scores(self._matrix @ unit, top_k)

    def _top_from_scores(self, scores: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """The best people from one probe's template scores. Only the best top_k x (most templates of
        anyone) template scores can matter (the k-th best person's best template cannot rank lower), and
        those are found without sorting or partitioning the whole array (:func:`_best_rows`)."""
        top_k = max(1, top_k)
        rows = _best_rows(scores, min(len(scores), top_k * self._most_templates))
        return self._people(rows, scores[rows], top_k)

    def _top_int8(self, ranking: np.ndarray, unit: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """Candidates from the integer product's ranking (with room for its rounding: twice the rows
        that can matter, plus 32), then their exact scores from the stored codes."""
        top_k = max(1, top_k)
        rows = _best_rows(ranking, min(len(ranking), 2 * top_k * self._most_templates + 32))
        return self._people(rows, self._int8.rescore(unit, rows), top_k)

    def _people(self, rows: np.ndarray, row_scores: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        seen: set[int] = set()
        for i in np.argsort(-row_scores, kind="stable"):
            owner = int(self._row_owner[rows[i]])
            if owner not in seen:
                seen.add(owner)
                out.append((owner, float(row_scores[i])))
                if len(out) == top_k:
                    break
        return out

    def _grade(self, score: float) -> Decision:
        if score >= self.accept:
            return Decision.ACCEPT
        if score >= self.retry:
            return Decision.RETRY
        return Decision.REJECT

    def _policy(self, result: MatchResult, when: dt.datetime | None, door_group: str | None) -> MatchResult:
        if result.decision is not Decision.ACCEPT or result.person_id is None:
            return result
        person = self.gallery.people[result.person_id]
        when = when or dt.datetime.now()
        if not person.valid_at(when):
            result.decision = Decision.REJECT
            result.reasons.append("outside this person's validity window")
        elif door_group and person.groups and door_group not in person.groups:
            result.decision = Decision.REJECT
            result.reasons.append(f"not in door group {door_group!r}")
        return result

    def identify(self, probe: np.ndarray, top_k: int = 5, when: dt.datetime | None = None,
                 door_group: str | None = None) -> MatchResult:
        """Who is this (1:N)? The best person if above threshold and not ambiguous."""
        return self._identity(self.top_people(probe, top_k), when, door_group)

    def identify_many(self, probes: np.ndarray, top_k: int = 5, when: dt.datetime | None = None,
                      door_group: str | None = None) -> list[MatchResult]:
        """`identify` for a batch of probes (several faces, several doors' requests): one matrix product
        for all of them, which a server answering many requests wants."""
        probes = np.atleast_2d(np.asarray(probes, np.float32))
        if self._count == 0:
            return [self._identity([], when, door_group) for _ in probes]
        units = np.stack([self._unit_probe(p) for p in probes])
        if self._int8 is not None:
            ranking = self._int8.ranking_scores(units)
            return [self._identity(self._top_int8(row, unit, top_k), when, door_group)
                    for row, unit in zip(ranking, units)]
        # probes x templates straight away: row-major scores per probe, no transposed copy (the copy of a
        # templates x probes product cost 4x the product itself: 58 vs 12 ms at 100k x 64)
        scores = units @ self._matrix.T
        return [self._identity(self._top_from_scores(row, top_k), when, door_group) for row in scores]

    def _identity(self, top: list[tuple[int, float]], when: dt.datetime | None, door_group: str | None) -> MatchResult:
        if not top:
            return MatchResult(Decision.REJECT, None, None, -1.0, self.accept, self.retry, [], ["gallery is empty"])
        cands = [(self.gallery.person_order[i], self.gallery.people[self.gallery.person_order[i]].name, score)
                 for i, score in top]
        best_id, best_name, best = cands[0]
        decision = self._grade(best)
        reasons = []
        if decision is Decision.ACCEPT and len(cands) > 1 and cands[1][2] >= self.accept and best - cands[1][2] < self.margin:
            decision = Decision.RETRY
            # the other person by gallery id only: reasons end up in audit logs, which never hold names
            reasons.append(f"ambiguous: person {cands[1][0]} scores within {self.margin}")
        if decision is Decision.REJECT:
            reasons.append(f"best score {best:.3f} below {self.retry:.3f}")
        elif decision is Decision.RETRY and not reasons:
            reasons.append(f"score {best:.3f} between retry {self.retry:.3f} and accept {self.accept:.3f}")
        result = MatchResult(decision, best_id if decision is not Decision.REJECT else None,
                             best_name if decision is not Decision.REJECT else None, best, self.accept, self.retry,
                             cands, reasons)
        return self._policy(result, when, door_group)

    def verify(self, probe: np.ndarray, claimed: str, when: dt.datetime | None = None,
               door_group: str | None = None) -> MatchResult:
        """Is this the claimed person (1:1)? Only the claimed person's templates are compared."""
        person = self.gallery.find(claimed)
        pidx = self.gallery.person_order.index(person.id)
        at = int(np.searchsorted(self._person_idx, pidx))
        if at >= len(self._person_idx) or self._person_idx[at] != pidx:
            return MatchResult(Decision.REJECT, person.id, person.name, -1.0, self.accept, self.retry, [],
                               ["claimed person has no templates"])
        rows = np.arange(self._starts[at], self._ends[at])
        unit = self._unit_probe(probe)
        score = float((self._int8.rescore(unit, rows) if self._int8 is not None else self._matrix[rows] @ unit).max())
        decision = self._grade(score)
        reasons = [] if decision is Decision.ACCEPT else [f"score {score:.3f} below accept {self.accept:.3f}"]
        result = MatchResult(decision, person.id, person.name, score, self.accept, self.retry,
                             [(person.id, person.name, score)], reasons)
        return self._policy(result, when, door_group)


def _best_rows(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of a superset of the `keep` highest scores (unordered), in about one pass over `scores`.

    The array is cut into at least `keep` blocks; the keep-th largest block maximum t is a lower bound of
    the keep-th largest score (the top `keep` block maxima are `keep` scores >= t), so every score in the
    top `keep` is >= t. A partition of the whole array costs ten times as much at 100k templates."""
    n = len(scores)
    if keep >= n:
        return np.arange(n)
    size = max(1, n // max(keep, min(n // 64, 4096)))
    maxima = np.maximum.reduceat(scores, np.arange(0, n, size))
    threshold = np.partition(maxima, len(maxima) - keep)[len(maxima) - keep]
    return np.flatnonzero(scores >= threshold)

