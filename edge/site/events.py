"""Doors and their audit events in the site store.

A door reports each audit entry once or more (a retry after a lost answer, a replayed outbox); the
store keeps one row per (door, sequence number) and says which were new, so the site's view never
counts an event twice. Events carry the door's fields as they were written (decision, the person's
site id, score), never a name or an image: the door's audit log refuses those already.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets

from facegate.edge.errors import SiteRequestError
from facegate.edge.site.store import IntegrityConflict, SiteStore, now

MAX_BATCH = 1000
_DOOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_SHORT_TEXT = 200


def add_door(store: SiteStore, name: str, door_group: str = "") -> str:
    name = " ".join(name.split())
    if not _DOOR_NAME.match(name):
        raise SiteRequestError("a door name is 1-64 letters, digits, spaces or . _ -", 422)
    group = door_group.strip()
    if group and not re.match(r"^[A-Za-z0-9._-]{1,64}$", group):
        raise SiteRequestError("a door group is 1-64 letters, digits or . _ -", 422)
    door_id = "door-" + secrets.token_hex(4)
    try:
        store.execute("INSERT INTO doors (id, name, door_group, created) VALUES (?, ?, ?, ?)",
                      (door_id, name, group, now()))
    except IntegrityConflict as exc:
        raise SiteRequestError(f"a door called {name!r} already exists", 409) from exc
    return door_id


def list_doors(store: SiteStore, offline_after_s: float | None = None) -> list[dict]:
    """Every door; with `offline_after_s`, each marked `online` unless silent for longer than that."""
    doors = store.query("SELECT id, name, door_group, created, last_heartbeat, gallery_version, model, liveness_mode, "
                        "status, revoked, acked_seq FROM doors ORDER BY name")
    if offline_after_s is not None:
        t = now()
        for d in doors:
            d["online"] = d["last_heartbeat"] is not None and t - d["last_heartbeat"] <= offline_after_s
    return doors


def heartbeat(store: SiteStore, door_id: str, body: dict) -> None:
    """Record a door's heartbeat (what it runs, which gallery version it holds)."""
    version = body.get("gallery_version")
    if version is not None and (type(version) is not int or version < 0):
        raise SiteRequestError("gallery_version must be a non-negative integer", 422)
    fields = {k: _short(body.get(k), k) for k in ("model", "liveness_mode", "status")}
    store.execute("UPDATE doors SET last_heartbeat=?, gallery_version=?, model=?, liveness_mode=?, status=? WHERE id=?",
                  (now(), version, fields["model"], fields["liveness_mode"], fields["status"], door_id))


def _short(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _SHORT_TEXT:
        raise SiteRequestError(f"{name} must be text of at most {_SHORT_TEXT} characters", 422)
    return value


def ingest(store: SiteStore, door_id: str, entries: list) -> dict:
    """Store a door's audit entries; {'accepted': new rows, 'duplicates': already known}."""
    if not isinstance(entries, list) or len(entries) > MAX_BATCH:
        raise SiteRequestError(f"events must be a list of at most {MAX_BATCH} audit entries", 422)
    accepted = duplicates = 0
    new: list[int] = []
    t = now()
    with store.transaction():
        for entry in entries:
            seq, time_, event = _checked(entry)
            score = entry.get("score")
            detail = {k: v for k, v in entry.items() if k not in ("seq", "time", "event", "decision", "person",
                                                                   "score", "mac", "prev")}
            if store.one("SELECT 1 AS x FROM events WHERE door_id=? AND seq=?", (door_id, seq)):
                duplicates += 1
                continue
            store.execute("INSERT INTO events (door_id, seq, time, event, decision, person_id, score, detail, received, "
                          "mac, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (door_id, seq, time_, event, _short(entry.get("decision"), "decision"),
                           _short(entry.get("person"), "person"),
                           float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
                           json.dumps(detail, sort_keys=True)[:4000], t, _short(entry.get("mac"), "mac"),
                           _short(entry.get("prev"), "prev")))
            accepted += 1
            new.append(seq)
        _check_chain(store, door_id, new)
        _advance_ack(store, door_id)
    return {"accepted": accepted, "duplicates": duplicates}


def _check_chain(store: SiteStore, door_id: str, new: list[int]) -> None:
    """Each new entry must link to its stored neighbours (its `prev` is the previous entry's `mac`); a link
    that does not hold is an alarm: the door's log was edited, or entries were forged or replaced. The
    neighbours of a batch come in one query, and a link between two new entries is judged once."""
    if not new:
        return
    rows = {r["seq"]: r for r in store.query("SELECT seq, mac, prev FROM events WHERE door_id=? AND seq BETWEEN ? AND ?",
                                             (door_id, min(new) - 1, max(new) + 1))}
    links = sorted({(s - 1, s) for s in new} | {(s, s + 1) for s in new})
    for a, b in links:
        if a in rows and b in rows and rows[a]["mac"] and rows[b]["prev"] and rows[a]["mac"] != rows[b]["prev"]:
            store.execute("INSERT INTO alarms (door_id, kind, seq, detail, created) VALUES (?, ?, ?, ?, ?)",
                          (door_id, "chain-broken", b, f"entry {b} does not follow entry {a}", now()))


def _advance_ack(store: SiteStore, door_id: str) -> int:
    """Move the door's acknowledged sequence over every stored entry without a gap; the new value."""
    acked = int(store.one("SELECT acked_seq FROM doors WHERE id=?", (door_id,))["acked_seq"])
    while True:
        rows = store.query("SELECT seq FROM events WHERE door_id=? AND seq > ? ORDER BY seq LIMIT 1000",
                           (door_id, acked))
        moved = 0
        for row in rows:
            if row["seq"] != acked + 1:
                break
            acked, moved = acked + 1, moved + 1
        if moved < 1000:
            break
    store.execute("UPDATE doors SET acked_seq=? WHERE id=?", (acked, door_id))
    return acked


def acked_seq(store: SiteStore, door_id: str) -> int:
    row = store.one("SELECT acked_seq FROM doors WHERE id=?", (door_id,))
    return int(row["acked_seq"]) if row else 0


def alarms(store: SiteStore, door_id: str | None = None) -> list[dict]:
    """Stored alarms (broken links) and live ones (entries missing after the acknowledged sequence)."""
    sql = "SELECT door_id, kind, seq, detail, created FROM alarms"
    rows = store.query(sql + (" WHERE door_id=?" if door_id else "") + " ORDER BY created DESC LIMIT 200",
                       (door_id,) if door_id else ())
    for door in store.query("SELECT d.id, d.acked_seq, (SELECT MAX(seq) FROM events e WHERE e.door_id = d.id) AS top "
                            "FROM doors d" + (" WHERE d.id=?" if door_id else ""), (door_id,) if door_id else ()):
        if door["top"] is not None and door["top"] > door["acked_seq"]:
            rows.append({"door_id": door["id"], "kind": "gap", "seq": door["acked_seq"] + 1,
                         "detail": f"entries after {door['acked_seq']} are missing (last received {door['top']})",
                         "created": now()})
    return rows


def _checked(entry) -> tuple[int, str, str]:
    if not isinstance(entry, dict):
        raise SiteRequestError("each event is a JSON object (a door audit entry)", 422)
    seq, time_, event = entry.get("seq"), entry.get("time"), entry.get("event")
    if type(seq) is not int or seq < 1:
        raise SiteRequestError("each event needs its sequence number 'seq' (a positive integer)", 422)
    if not isinstance(event, str) or not event or len(event) > 64:
        raise SiteRequestError("each event needs an 'event' name", 422)
    try:
        stamp = dt.datetime.fromisoformat(str(time_))
    except ValueError as exc:
        raise SiteRequestError(f"event {seq}: 'time' {time_!r} is not an ISO timestamp", 422) from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    # one spelling (UTC, milliseconds) so the store's text comparison orders and filters by time
    return seq, stamp.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds"), event


def search(store: SiteStore, door: str = "", person: str = "", decision: str = "", since: str = "",
           until: str = "", limit: int = 500) -> list[dict]:
    """Events newest first, filtered by door id, person id, decision and ISO time range."""
    where, params = [], []
    for column, value in (("e.door_id", door), ("e.person_id", person), ("e.decision", decision)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    for op, value, name in ((">=", since, "since"), ("<=", until, "until")):
        if value:
            try:
                stamp = dt.datetime.fromisoformat(value)
            except ValueError as exc:
                raise SiteRequestError(f"{name} {value!r} is not a date (YYYY-MM-DD[THH:MM])", 422) from exc
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.timezone.utc)
            where.append(f"e.time {op} ?")
            params.append(stamp.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds"))
    sql = ("SELECT e.door_id, d.name AS door_name, e.seq, e.time, e.event, e.decision, e.person_id, p.name AS person_name, "
           "e.score, e.detail FROM events e JOIN doors d ON d.id = e.door_id LEFT JOIN people p ON p.id = e.person_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return store.query(sql + " ORDER BY e.time DESC, e.seq DESC LIMIT ?", (*params, int(limit)))


def to_csv(rows: list[dict]) -> str:
    """The events as CSV (cells that a spreadsheet would run as a formula are quoted with a leading ')."""
    out = io.StringIO()
    columns = ["time", "door_id", "door_name", "seq", "event", "decision", "person_id", "score"]
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def erasure_confirmations(store: SiteStore, limit: int = 50) -> list[dict]:
    """Recent erasures and which doors have confirmed them: a door has, once the gallery version it runs
    is at least its group's first snapshot made after the erasure (that snapshot no longer holds the person)."""
    from facegate.edge.fleet.topics import group_name
    doors = store.query("SELECT id, name, door_group, gallery_version FROM doors WHERE revoked IS NULL ORDER BY name")
    out = []
    for e in store.query("SELECT person_id, erased, actor, templates, receipt FROM erasures ORDER BY erased DESC LIMIT ?",
                         (limit,)):
        confirmed, pending = [], []
        for d in doors:
            first = store.one("SELECT MIN(version) AS v FROM snapshots WHERE door_group=? AND created >= ?",
                              (group_name(d["door_group"] or None), e["erased"]))["v"]
            done = first is not None and d["gallery_version"] is not None and d["gallery_version"] >= first
            (confirmed if done else pending).append(d["name"])
        out.append({**e, "confirmed": confirmed, "pending": pending})
    return out
