"""1:1 and 1:N verification against the site's people, for apps that keep no gallery of their own.

The same matcher, thresholds (the embedder card's, at the configured FAR) and graded accept / retry /
reject as the door. Concurrent identify requests are gathered by one worker thread into a single
matrix product (:meth:`Matcher.identify_many`): at 100k templates one probe costs a full pass over
the matrix, and sixteen probes cost little more than one. The matrix is rebuilt when the store's
``people_generation`` counter moves (checked at most every :data:`RECHECK_S` seconds, at once after
a change made through this process).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from facegate.edge.errors import GalleryError, NoFaceError, SiteRequestError
from facegate.edge.gallery.matching import Matcher, MatchResult
from facegate.edge.gallery.records import ModelBinding
from facegate.edge.images import decode_rgb
from facegate.edge.site import people
from facegate.edge.site.sealing import Sealer
from facegate.edge.site.store import SiteStore

log = logging.getLogger(__name__)

RECHECK_S = 0.5
MAX_BATCH = 64


class VerificationService:
    """Answers verify / identify by embedding or by image."""

    def __init__(self, store: SiteStore, sealer: Sealer, binding: ModelBinding, accept: float, retry: float,
                 pipeline_factory: Callable[[], object] | None = None, max_batch: int = MAX_BATCH) -> None:
        self.store, self.sealer, self.binding = store, sealer, binding
        self.accept, self.retry = accept, retry
        self._pipeline_factory = pipeline_factory
        self._pipeline = None
        self._pipeline_lock = threading.Lock()
        self._matcher: Matcher | None = None
        self._generation = -1
        self._checked_at = 0.0
        self._matcher_lock = threading.Lock()
        self.max_batch = max_batch
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve_batches, name="identify-batcher", daemon=True)
        self._worker.start()

    # -- the matrix ------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """People changed through this process: rebuild before the next answer."""
        self._checked_at = 0.0

    def matcher(self) -> Matcher:
        with self._matcher_lock:
            t = time.monotonic()
            if self._matcher is None or t - self._checked_at >= RECHECK_S:
                self._checked_at = t
                generation = self.store.counter("people_generation")
                if generation != self._generation or self._matcher is None:
                    gallery = people.gallery(self.store, self.sealer, self.binding)
                    self._matcher = Matcher(gallery, self.accept, self.retry)
                    self._generation = generation
                    log.info("verification matrix rebuilt: %d people, %d templates", len(gallery.people),
                             len(gallery.templates))
            return self._matcher

    # -- probes ----------------------------------------------------------------------------------
    def probe_from_list(self, values) -> np.ndarray:
        """A client's embedding, checked: a list of finite numbers of the model's dimension."""
        try:
            probe = np.asarray(values, np.float64)
        except (TypeError, ValueError) as exc:
            raise SiteRequestError("embedding must be a list of numbers", 422) from exc
        if probe.ndim != 1 or probe.shape[0] != self.binding.dim:
            raise SiteRequestError(f"embedding must have {self.binding.dim} numbers (model {self.binding.name})", 422)
        if not np.all(np.isfinite(probe)) or not np.any(probe):
            raise SiteRequestError("embedding must be finite and not all zero", 422)
        return probe.astype(np.float32)

    def pipeline(self):
        with self._pipeline_lock:
            if self._pipeline is None:
                if self._pipeline_factory is None:
                    raise SiteRequestError("this server answers embeddings only (no face pipeline)", 501)
                self._pipeline = self._pipeline_factory()
            return self._pipeline

    def probe_from_image(self, data: bytes, filename: str = "upload") -> tuple[np.ndarray, dict | None]:
        """(embedding, liveness dict) of the subject face in an uploaded image. A suspected attack is
        refused (403) before any matching: a photo of a photo learns nothing about who is enrolled."""
        image = decode_rgb(data, filename)
        pipe = self.pipeline()
        with self._pipeline_lock:        # the interpreters are not thread-safe; one image at a time
            try:
                emb = pipe.embed(image, require_quality=True, check_liveness=pipe.liveness is not None)
            except NoFaceError as exc:
                raise SiteRequestError(str(exc), 422) from exc
        live = emb.liveness.to_dict() if emb.liveness is not None else None
        if emb.liveness is not None and not emb.liveness.live:
            raise SiteRequestError(emb.liveness.reason, 403)
        return emb.vector, live

    # -- answers ---------------------------------------------------------------------------------
    def verify(self, probe: np.ndarray, person: str, door_group: str | None = None) -> MatchResult:
        try:
            return self.matcher().verify(probe, person, door_group=door_group)
        except GalleryError as exc:          # no such person, or a name several people share
            raise SiteRequestError(str(exc), 404) from exc

    def submit_identify(self, probe: np.ndarray, door_group: str | None = None) -> Future:
        """1:N, answered (a Future of MatchResult) together with whatever other requests are waiting."""
        future: Future = Future()
        self._queue.put((probe, door_group, future))
        return future

    def identify(self, probe: np.ndarray, door_group: str | None = None, timeout: float = 30.0) -> MatchResult:
        return self.submit_identify(probe, door_group).result(timeout=timeout)

    def _serve_batches(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                matcher = self.matcher()
                by_group: dict[str | None, list] = {}
                for item in batch:
                    by_group.setdefault(item[1], []).append(item)
                for group, items in by_group.items():
                    results = matcher.identify_many(np.stack([p for p, _, _ in items]), door_group=group)
                    for (_, _, future), result in zip(items, results):
                        future.set_result(result)
            except Exception as exc:          # answer every waiting request; the worker carries on
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)


def result_json(result: MatchResult, live: dict | None = None) -> dict:
    """The API's answer: decision, person (id and name when not rejected), score, thresholds, reasons."""
    return {"decision": result.decision.value, "person": result.person_id, "name": result.name,
            "score": round(float(result.score), 4), "accept_threshold": round(result.accept_threshold, 4),
            "retry_threshold": round(result.retry_threshold, 4), "reasons": result.reasons,
            **({"liveness": live} if live is not None else {})}
