"""kill -9 inside the write windows, not after them: a child process pauses at the N-th file-system call
(a half-written audit line, a written but unsynced temp file, just before or after a rename, between the
log line and its seal, in the middle of a rotation) and is SIGKILLed there. Afterwards the door must
start, its log verify with every acknowledged entry in it, and the gallery open as the old or the new
version. (SIGKILL keeps the page cache, so this checks the ordering of writes; power loss additionally
relies on the fsyncs, which these runs also pass through.)"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from facegate.edge.door.audit import AuditLog, rotated_files, verify

KEY = bytes(range(32))

PAUSER = textwrap.dedent(r"""
    import os, sys, time
    STOP = int(sys.argv[1])
    calls = {"n": 0}
    def pausing(name, real):
        def wrapper(*args):
            calls["n"] += 1
            if calls["n"] == STOP:
                if name == "write" and len(args[1]) > 1:      # a torn write: half the bytes reach the file
                    real(args[0], args[1][:len(args[1]) // 2])
                print(f"WINDOW {name}", flush=True)
                time.sleep(60)
            return real(*args)
        return wrapper
    for name in ("write", "fsync", "replace", "rename", "unlink", "ftruncate"):
        setattr(os, name, pausing(name, getattr(os, name)))
    """)

AUDIT_CHILD = PAUSER + textwrap.dedent(r"""
    from facegate.edge.door.audit import AuditLog
    log = AuditLog(sys.argv[2], key=bytes(range(32)), door_id="front", max_bytes=700, keep=3)
    for i in range(int(sys.argv[3])):
        e = log.append("reject", score=i / 100)
        print(f"ACK {e['seq']}", flush=True)
    print(f"CALLS {calls['n']}", flush=True)
    """)

GALLERY_CHILD = PAUSER + textwrap.dedent(r"""
    import numpy as np
    from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
    store = GalleryStore(sys.argv[2], KeySource("raw", bytes(range(32))))
    for i in range(int(sys.argv[3])):
        with store.transaction() as g:
            p = g.add_person(f"p{i}")
            g.add_templates(p.id, np.eye(8, dtype=np.float32)[:2])
        print(f"ACK {i + 1}", flush=True)
    print(f"CALLS {calls['n']}", flush=True)
    """)


def _run_until_window(script: str, stop: int, path, count: int) -> tuple[str | None, int]:
    """Start the child, wait for it to pause at call `stop` and SIGKILL it there (or let it finish).
    Returns (the call it was killed in, or None, the last acknowledged count)."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(stop), str(path), str(count)],
                            stdout=subprocess.PIPE, text=True)
    acked, window = 0, None
    for line in proc.stdout:
        if line.startswith("ACK"):
            acked = int(line.split()[1])
        elif line.startswith("WINDOW"):
            window = line.split()[1]
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.close()
    assert proc.wait(timeout=60) in (0, -signal.SIGKILL)
    return window, acked


def _call_count(script: str, path, count: int) -> int:
    out = subprocess.run([sys.executable, "-c", script, "0", str(path), str(count)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return int(out.split("CALLS")[1])


def test_audit_kill_at_every_kind_of_write_window(tmp_path):
    entries = 12          # with max_bytes=700: two rotations, so rename and seal-manifest windows are in it
    total = _call_count(AUDIT_CHILD, tmp_path / "dry" / "audit.jsonl", entries)
    assert total > 40
    windows = set()
    for stop in range(1, total + 1, max(1, total // 45)):
        folder = tmp_path / f"stop{stop}"
        folder.mkdir()
        log = folder / "audit.jsonl"
        window, acked = _run_until_window(AUDIT_CHILD, stop, log, entries)
        assert window is not None
        windows.add(window)
        AuditLog(log, key=KEY, door_id="front", max_bytes=700, keep=3)   # the door starts again
        info = verify(log, key=KEY)
        assert info["last_seq"] >= acked + (1 if acked == 0 else 0), (stop, window, info, acked)
        assert not list(folder.glob(".fg-tmp-*"))    # a seal write cut short leaves nothing behind
        torn = list(folder.glob("audit.jsonl.torn-*"))
        assert not torn or window == "write"        # only a half-written line is ever quarantined
    assert {"write", "fsync", "replace", "unlink"} <= windows, windows
    assert rotated_files(tmp_path / "dry" / "audit.jsonl")       # the dry run did rotate


def test_gallery_kill_at_every_write_window(tmp_path):
    from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
    binding = ModelBinding("test-embedder", "5e" * 32, 8)
    writes = 4
    dry = tmp_path / "dry.fgg"
    GalleryStore(dry, KeySource("raw", KEY)).create(binding)
    total = _call_count(GALLERY_CHILD, dry, writes)
    windows = set()
    for stop in range(1, total + 1):
        path = tmp_path / f"g{stop}.fgg"
        GalleryStore(path, KeySource("raw", KEY)).create(binding)
        window, acked = _run_until_window(GALLERY_CHILD, stop, path, writes)
        if window is None:
            continue
        windows.add(window)
        g = GalleryStore(path, KeySource("raw", KEY)).load()
        assert len(g.people) in (acked, acked + 1), (stop, window, acked)     # the old or the new version
        assert len(g.templates) == 2 * len(g.people)
        with GalleryStore(path, KeySource("raw", KEY)).transaction():         # a later writer cleans up
            pass
        assert not list(tmp_path.glob(".fg-tmp-*"))
    assert {"fsync", "replace"} <= windows, windows


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_the_pauser_really_stops_inside_the_write(tmp_path):
    """The campaign is aimed at the window: at a torn-write stop, the file holds half a line."""
    dry = tmp_path / "dry"
    dry.mkdir()
    log = dry / "audit.jsonl"
    window, _ = _run_until_window(AUDIT_CHILD, 1, log, 3)     # the first call is the genesis line's write
    assert window == "write"
    data = log.read_bytes()
    assert data and not data.endswith(b"\n")
