"""The site store: one small interface over SQLite (the embedded default) and PostgreSQL (large sites).

Domain code (accounts, people, events) writes portable SQL with ``?`` placeholders and calls
:meth:`SiteStore.query`, :meth:`SiteStore.execute` and :meth:`SiteStore.transaction`; the store
translates placeholders for PostgreSQL and returns rows as dicts. The schema lives in :data:`MIGRATIONS`,
numbered; the applied number is kept in ``meta.schema_version`` and :meth:`SiteStore.migrate` applies
the missing ones in one transaction each, so a store made by an older release keeps opening.

SQLite runs in WAL mode with foreign keys on and a busy timeout (several server threads, one file);
PostgreSQL through psycopg 3. Both are used from the server's worker threads through one connection
guarded by a lock: the site's write rate is people enrolling and doors reporting, not a bank.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from facegate.edge.errors import SiteError

log = logging.getLogger(__name__)

#: type words per dialect, substituted into the migrations
_TYPES = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "real": "REAL", "bigint": "INTEGER"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "real": "DOUBLE PRECISION", "bigint": "BIGINT"},
}

#: schema steps, in order; never edit a released step, add a new one
MIGRATIONS: list[list[str]] = [
    [   # 1: accounts, sessions, people, templates, erasures, doors, events, API tokens
        """CREATE TABLE accounts (id {pk}, username TEXT NOT NULL UNIQUE, pw_hash TEXT NOT NULL,
            role TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0, locked_until {real} NOT NULL DEFAULT 0,
            created {real} NOT NULL)""",
        """CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, account_id {bigint} NOT NULL
            REFERENCES accounts(id) ON DELETE CASCADE, csrf TEXT NOT NULL, expires {real} NOT NULL)""",
        """CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE,
            valid_from TEXT, valid_until TEXT, door_groups TEXT NOT NULL DEFAULT '', created {real} NOT NULL,
            updated {real} NOT NULL)""",
        """CREATE TABLE templates (id {pk}, person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            model_sha256 TEXT NOT NULL, vector {blob} NOT NULL, crop {blob}, created {real} NOT NULL)""",
        "CREATE INDEX templates_person ON templates(person_id)",
        """CREATE TABLE erasures (id {pk}, person_id TEXT NOT NULL, erased {real} NOT NULL, actor TEXT NOT NULL,
            templates INTEGER NOT NULL, receipt TEXT NOT NULL)""",
        """CREATE TABLE doors (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, door_group TEXT NOT NULL DEFAULT '',
            created {real} NOT NULL, last_heartbeat {real}, gallery_version {bigint}, model TEXT,
            liveness_mode TEXT, status TEXT)""",
        """CREATE TABLE events (id {pk}, door_id TEXT NOT NULL REFERENCES doors(id) ON DELETE CASCADE,
            seq {bigint} NOT NULL, time TEXT NOT NULL, event TEXT NOT NULL, decision TEXT, person_id TEXT,
            score {real}, detail TEXT NOT NULL DEFAULT '{{}}', received {real} NOT NULL, UNIQUE (door_id, seq))""",
        "CREATE INDEX events_time ON events(time)",
        """CREATE TABLE api_tokens (id {pk}, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL, door_id TEXT REFERENCES doors(id) ON DELETE CASCADE, created {real} NOT NULL,
            revoked {real})""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value {bigint} NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('people_generation', 0)",
    ],
    [   # 2: the fleet: one-time registrations, door broker credentials, signed snapshots, chain alarms
        """CREATE TABLE registrations (token_hash TEXT PRIMARY KEY, door_id TEXT NOT NULL REFERENCES doors(id)
            ON DELETE CASCADE, created {real} NOT NULL, expires {real} NOT NULL, used {real})""",
        """CREATE TABLE door_secrets (door_id TEXT PRIMARY KEY REFERENCES doors(id) ON DELETE CASCADE,
            broker_hash TEXT NOT NULL)""",
        "ALTER TABLE doors ADD COLUMN revoked {real}",
        "ALTER TABLE doors ADD COLUMN acked_seq {bigint} NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN mac TEXT",
        "ALTER TABLE events ADD COLUMN prev TEXT",
        """CREATE TABLE snapshots (door_group TEXT NOT NULL, version {bigint} NOT NULL, people_generation {bigint}
            NOT NULL, sha256 TEXT NOT NULL, announcement TEXT NOT NULL, data {blob} NOT NULL, created {real} NOT NULL,
            PRIMARY KEY (door_group, version))""",
        """CREATE TABLE alarms (id {pk}, door_id TEXT NOT NULL REFERENCES doors(id) ON DELETE CASCADE, kind TEXT NOT NULL,
            seq {bigint}, detail TEXT NOT NULL, created {real} NOT NULL)""",
    ],
    [   # 3: model rollout: a door group's snapshots are made for each model in use
        "ALTER TABLE snapshots ADD COLUMN model_sha256 TEXT",
    ],
]


def _sqlite_path(url: str) -> Path:
    return Path(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)


class SiteStore:
    """A connection to the site's database (``sqlite:///path`` or a plain path, or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._depth = 0
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self._conn = self._connect_postgresql(url)
        else:
            self.dialect = "sqlite"
            self._conn = self._connect_sqlite(_sqlite_path(url))

    # -- connecting ---------------------------------------------------------------------------
    @staticmethod
    def _connect_sqlite(path: Path) -> sqlite3.Connection:
        if path.is_dir():
            raise SiteError(f"the site store {path} is a folder; give the database file")
        if not path.parent.is_dir():
            raise SiteError(f"the folder of the site store does not exist: {path.parent} (run `facegate site init`)")
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise SiteError(f"the site store {path} cannot be opened ({exc}): not a facegate site database, "
                            "or damaged") from exc
        return conn

    @staticmethod
    def _connect_postgresql(url: str):
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as exc:
            raise SiteError("PostgreSQL needs psycopg: pip install 'facegate[site]'") from exc
        try:
            return psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise SiteError(f"cannot connect to the PostgreSQL site store: {str(exc).strip()}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- SQL ------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _run(self, sql: str, params: Sequence[Any]):
        try:
            if self.dialect == "sqlite":
                return self._conn.execute(sql, tuple(params))
            cur = self._conn.cursor()
            cur.execute(self._sql(sql), tuple(params))
            return cur
        except sqlite3.IntegrityError as exc:
            raise IntegrityConflict(str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise SiteError(f"site store error: {exc}") from exc
        except Exception as exc:   # psycopg's errors, imported lazily
            if type(exc).__module__.startswith("psycopg"):
                from psycopg import errors as pg_errors
                if isinstance(exc, pg_errors.IntegrityError):
                    raise IntegrityConflict(str(exc).strip()) from exc
                raise SiteError(f"site store error: {str(exc).strip()}") from exc
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self._lock:
            cur = self._run(sql, params)
            return cur.rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (bulk imports)."""
        with self._lock:
            try:
                if self.dialect == "sqlite":
                    self._conn.executemany(sql, rows)
                else:
                    with self._conn.cursor() as cur:
                        cur.executemany(self._sql(sql), rows)
            except sqlite3.IntegrityError as exc:
                raise IntegrityConflict(str(exc)) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """Rows as dicts (bytes columns as bytes)."""
        with self._lock:
            cur = self._run(sql, params)
            return [_plain(dict(row)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """An INSERT ... RETURNING id; the new row's id."""
        with self._lock:
            cur = self._run(sql + " RETURNING id", params)
            row = cur.fetchone()
            return int(row["id"] if isinstance(row, dict) or hasattr(row, "keys") else row[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator["SiteStore"]:
        """All statements inside commit together or not at all (nested calls join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                if self.dialect == "sqlite":
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                else:
                    with self._conn.transaction():
                        yield self
            finally:
                self._depth = 0

    # -- schema ---------------------------------------------------------------------------------
    def schema_version(self) -> int:
        if self.dialect == "sqlite":
            exists = self.one("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
        else:
            exists = self.one("SELECT tablename AS name FROM pg_tables WHERE tablename='meta' "
                              "AND schemaname = current_schema()")
        if not exists:
            return 0
        row = self.one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row["value"]) if row else 0

    def migrate(self) -> int:
        """Apply the missing schema steps; the version now. A store newer than this release is refused."""
        with self._lock:
            current = self.schema_version()
            if current > len(MIGRATIONS):
                raise SiteError(f"the site store has schema version {current}, newer than this facegate "
                                f"({len(MIGRATIONS)}): upgrade facegate before serving it")
            if current == 0:
                with self.transaction():
                    self.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    self.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '0')")
            for number in range(current + 1, len(MIGRATIONS) + 1):
                with self.transaction():
                    for statement in MIGRATIONS[number - 1]:
                        self.execute(statement.format(**_TYPES[self.dialect]))
                    self.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(number),))
                log.info("site store migrated to schema version %d", number)
            return len(MIGRATIONS)

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key=?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            if self.execute("UPDATE meta SET value=? WHERE key=?", (value, key)) == 0:
                self.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def bump(self, counter: str) -> int:
        """Increment a named counter (e.g. the people generation the matcher cache watches)."""
        with self.transaction():
            self.execute("UPDATE counters SET value = value + 1 WHERE name=?", (counter,))
            return int(self.one("SELECT value FROM counters WHERE name=?", (counter,))["value"])

    def counter(self, counter: str) -> int:
        row = self.one("SELECT value FROM counters WHERE name=?", (counter,))
        return int(row["value"]) if row else 0


class IntegrityConflict(SiteError):
    """A unique or foreign-key constraint refused the change (a duplicate name, a second copy of an event)."""


def _plain(row: dict) -> dict:
    """memoryview (psycopg bytea) -> bytes, so callers see one type whatever the database."""
    return {k: (bytes(v) if isinstance(v, memoryview) else v) for k, v in row.items()}


def now() -> float:
    """Seconds since the epoch: every time column of the store is in this unit (UTC, no time zone issues)."""
    return time.time()
