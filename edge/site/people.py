"""The site's people: enrolment from uploaded photos, search, rename, validity, groups, erasure.

Templates and the aligned face crops (kept so the site can re-embed when the model changes) are sealed
with the server key (:mod:`facegate.edge.site.sealing`); names live in the store in clear because
operators search by them, but never reach a log. Every change bumps the ``people_generation``
counter, which the verification service watches to rebuild its matrix.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field

import numpy as np

from facegate.edge.errors import ImageError, NoFaceError, SiteRequestError
from facegate.edge.face.capture import encode_crop
from facegate.edge.gallery.records import Gallery, ModelBinding, Person
from facegate.edge.images import decode_rgb
from facegate.edge.site.sealing import Sealer
from facegate.edge.site.store import IntegrityConflict, SiteStore, now

log = logging.getLogger(__name__)

MAX_NAME = 120
MAX_GROUPS = 32


@dataclass
class PhotoResult:
    """What one uploaded photo gave: usable or not, and why (shown to the person enrolling)."""

    filename: str
    ok: bool
    reasons: list[str] = field(default_factory=list)
    liveness: dict | None = None
    vector: np.ndarray | None = None
    crop_jpeg: bytes | None = None

    def to_dict(self) -> dict:
        return {"filename": self.filename, "ok": self.ok, "reasons": self.reasons, "liveness": self.liveness}


def assess_photos(pipeline, photos: list[tuple[str, bytes]], check_liveness: bool = True) -> list[PhotoResult]:
    """Detect, check quality and liveness, and embed each photo; a bad photo never costs the good ones."""
    out = []
    for filename, data in photos:
        try:
            image = decode_rgb(data, filename)
            emb = pipeline.embed(image, require_quality=False, check_liveness=check_liveness)
        except (ImageError, NoFaceError) as exc:
            out.append(PhotoResult(filename, False, [str(exc)]))
            continue
        reasons = list(emb.quality.reasons)
        live = emb.liveness.to_dict() if emb.liveness is not None else None
        if emb.liveness is not None and not emb.liveness.live:
            reasons.append(emb.liveness.reason)
        ok = not reasons
        out.append(PhotoResult(filename, ok, reasons or ["passed the quality gates" +
                                                         (" and the liveness check" if live else "")], live,
                               emb.vector if ok else None,
                               encode_crop(pipeline.crop(image, emb.face)) if ok else None))
    return out


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise SiteRequestError("a person needs a name", 422)
    if len(name) > MAX_NAME:
        raise SiteRequestError(f"a name has at most {MAX_NAME} characters", 422)
    return name


def _clean_time(value: str | None, field_name: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    try:
        return dt.datetime.fromisoformat(str(value).strip()).isoformat()
    except ValueError as exc:
        raise SiteRequestError(f"{field_name} {value!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)", 422) from exc


def _clean_groups(groups: str | list[str] | None) -> str:
    items = groups.replace(",", " ").split() if isinstance(groups, str) else list(groups or [])
    items = sorted({g.strip() for g in items if g.strip()})
    if len(items) > MAX_GROUPS or any(len(g) > 64 or not all(c.isalnum() or c in "-_." for c in g) for g in items):
        raise SiteRequestError("door groups are up to 32 names of letters, digits, - _ .", 422)
    return " ".join(items)


def enrol(store: SiteStore, sealer: Sealer, binding: ModelBinding, name: str, results: list[PhotoResult],
          valid_from: str | None = None, valid_until: str | None = None, groups: str | list[str] | None = None) -> str:
    """Store a new person with the templates of the usable photos; their site id."""
    usable = [r for r in results if r.ok]
    if not usable:
        first = next((f"{r.filename}: {'; '.join(r.reasons)}" for r in results), "no photos")
        raise SiteRequestError(f"none of the photos gave a usable face ({first}); nobody was enrolled", 422)
    name = _clean_name(name)
    vf, vu = _clean_time(valid_from, "valid from"), _clean_time(valid_until, "valid until")
    if vf and vu and vf > vu:
        raise SiteRequestError("the validity window ends before it starts", 422)
    person_id = secrets.token_hex(6)
    t = now()
    try:
        with store.transaction():
            store.execute("INSERT INTO people (id, name, name_key, valid_from, valid_until, door_groups, created, "
                          "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (person_id, name, _name_key(name), vf, vu, _clean_groups(groups), t, t))
            for r in usable:
                vector = np.asarray(r.vector, np.float32)
                vector = vector / max(float(np.linalg.norm(vector)), 1e-10)
                store.execute("INSERT INTO templates (person_id, model_sha256, vector, crop, created) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (person_id, binding.sha256, sealer.seal(vector.tobytes(), f"template:{person_id}"),
                               sealer.seal(r.crop_jpeg or b"", f"crop:{person_id}"), t))
            store.bump("people_generation")
    except IntegrityConflict as exc:
        raise SiteRequestError(f"a person called {name!r} is already enrolled", 409) from exc
    return person_id


def search(store: SiteStore, query: str = "", limit: int = 200) -> list[dict]:
    """People whose name contains `query` (case-insensitive), with their template counts, by name."""
    like = "%" + _name_key(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return store.query(
        "SELECT p.id, p.name, p.valid_from, p.valid_until, p.door_groups, p.created, p.updated, "
        "(SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id) AS templates FROM people p "
        "WHERE p.name_key LIKE ? ESCAPE '\\' ORDER BY p.name_key LIMIT ?", (like, int(limit)))


def get(store: SiteStore, person_id: str) -> dict:
    row = store.one("SELECT p.id, p.name, p.valid_from, p.valid_until, p.door_groups, p.created, p.updated, "
                    "(SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id) AS templates "
                    "FROM people p WHERE p.id=?", (person_id,))
    if row is None:
        raise SiteRequestError("no such person (removed, or a wrong link)", 404)
    return row


def rename(store: SiteStore, person_id: str, new_name: str) -> dict:
    get(store, person_id)
    name = _clean_name(new_name)
    try:
        with store.transaction():
            store.execute("UPDATE people SET name=?, name_key=?, updated=? WHERE id=?",
                          (name, _name_key(name), now(), person_id))
            store.bump("people_generation")
    except IntegrityConflict as exc:
        raise SiteRequestError(f"a person called {name!r} already exists", 409) from exc
    return get(store, person_id)


def set_access(store: SiteStore, person_id: str, valid_from: str | None, valid_until: str | None,
               groups: str | list[str] | None) -> dict:
    get(store, person_id)
    vf, vu = _clean_time(valid_from, "valid from"), _clean_time(valid_until, "valid until")
    if vf and vu and vf > vu:
        raise SiteRequestError("the validity window ends before it starts", 422)
    with store.transaction():
        store.execute("UPDATE people SET valid_from=?, valid_until=?, door_groups=?, updated=? WHERE id=?",
                      (vf, vu, _clean_groups(groups), now(), person_id))
        store.bump("people_generation")
    return get(store, person_id)


def erase(store: SiteStore, person_id: str, actor: str) -> dict:
    """Delete the person and every template and crop of theirs; an erasure receipt (no name, no face)
    that the admin trail records and the fleet's doors confirm."""
    get(store, person_id)
    with store.transaction():
        count = int(store.one("SELECT COUNT(*) AS n FROM templates WHERE person_id=?", (person_id,))["n"])
        store.execute("DELETE FROM templates WHERE person_id=?", (person_id,))
        store.execute("DELETE FROM people WHERE id=?", (person_id,))
        t = now()
        body = {"person": person_id, "templates": count, "erased": round(t, 3), "actor": actor}
        receipt = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        store.execute("INSERT INTO erasures (person_id, erased, actor, templates, receipt) VALUES (?, ?, ?, ?, ?)",
                      (person_id, t, actor, count, receipt))
        store.bump("people_generation")
    return {**body, "receipt": receipt}


def gallery(store: SiteStore, sealer: Sealer, binding: ModelBinding) -> Gallery:
    """Every person and template of this model as an in-memory gallery (opened with the server key)."""
    g = Gallery(binding)
    for row in store.query("SELECT id, name, valid_from, valid_until, door_groups, created FROM people ORDER BY id"):
        g.people[row["id"]] = Person(row["id"], row["name"], None, row["valid_from"], row["valid_until"],
                                     row["door_groups"].split(), str(row["created"]))
        g.person_order.append(row["id"])
    order = {pid: i for i, pid in enumerate(g.person_order)}
    rows = store.query("SELECT person_id, vector FROM templates WHERE model_sha256=? ORDER BY id", (binding.sha256,))
    if rows:
        g.templates = np.stack([np.frombuffer(sealer.open(r["vector"], f"template:{r['person_id']}"), np.float32)
                                for r in rows]).reshape(len(rows), binding.dim)
        g.owners = np.array([order[r["person_id"]] for r in rows], np.int64)
        g.crops = [None] * len(rows)
    return g
