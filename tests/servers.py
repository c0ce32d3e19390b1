"""Real servers for the tests, started on loopback ports in temporary folders and always stopped.

PostgreSQL from Debian's package (`.ci/run` installs it): initdb + pg_ctl as the `postgres` user when
the tests run as root (initdb refuses root), as the current user otherwise. A test that needs a server
that is not installed is skipped, saying which package provides it.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.edge.bench.loopback import free_port  # noqa: F401 (the tests' one free-port helper)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """A fresh PostgreSQL server on a free loopback port; yields its URL (database `facegate`). Its
    folder is a new one under /tmp (pytest's own folders are private to root, and the server runs as
    `postgres` when the tests run as root), removed afterwards."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`; .ci/run installs it)")
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb cannot run")
    tmp = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(tmp, "postgres")
    port = free_port()
    data, logfile = tmp / "data", tmp / "log"
    _run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "facegate"])
    _run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-w", "-o",
          f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1", "start"])
    try:
        url = f"postgresql://facegate@127.0.0.1:{port}/postgres"
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE facegate")
        yield f"postgresql://facegate@127.0.0.1:{port}/facegate"
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
