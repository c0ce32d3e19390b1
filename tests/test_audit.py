"""The door's audit log as an attacker and a failing machine would treat it: every edit, deletion,
forgery and truncation must fail `verify` (exit 13 through the CLI, never a traceback); a torn last line
after a power cut must not stop the door."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import subprocess
import sys

import pytest

from facegate.edge.door.audit import AuditLog, default_key_path, key_id, rotated_files, seal_path, verify
from facegate.edge.errors import AuditError

KEY = b"k" * 32


def _log(tmp_path, n=5, **kw):
    log = AuditLog(tmp_path / "audit.jsonl", key=KEY, door_id="front", **kw)
    for i in range(n):
        log.append("accept", person_id=f"p{i:03d}", score=0.71)
    return log, tmp_path / "audit.jsonl"


def _lines(path):
    return path.read_bytes().splitlines(keepends=True)


def _cli_verify(path, key_file=None):
    cmd = [sys.executable, "-m", "facegate.apps.cli", "audit", "verify", str(path)]
    if key_file:
        cmd += ["--key-file", str(key_file)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_fresh_log_starts_with_genesis_and_verifies(tmp_path):
    _, path = _log(tmp_path)
    first = json.loads(_lines(path)[0])
    assert first["event"] == "genesis" and first["seq"] == 1 and first["door"] == "front"
    assert first["key_id"] == key_id(KEY)
    info = verify(path, key=KEY)
    assert info["entries"] == 6 and info["last_seq"] == 6 and info["unsealed"] == 0
    with pytest.raises(AuditError, match="personal"):
        AuditLog(path, key=KEY).append("accept", name="Alice")


def test_files_are_private(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", door_id="front", max_bytes=400, keep=3)  # key created beside it
    for _ in range(10):
        log.append("reject", score=0.1)
    files = [tmp_path / "audit.jsonl", seal_path(tmp_path / "audit.jsonl"), default_key_path(tmp_path / "audit.jsonl"),
             *rotated_files(tmp_path / "audit.jsonl").values()]
    assert len(files) > 3
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert verify(tmp_path / "audit.jsonl")["entries"] > 0   # default key path


@pytest.mark.parametrize("attack", ["drop_last", "drop_last_two", "drop_first", "drop_first_two", "empty",
                                    "delete_file"])
def test_deleting_entries_at_either_end_is_detected(tmp_path, attack):
    _, path = _log(tmp_path)
    lines = _lines(path)
    kept = {"drop_last": lines[:-1], "drop_last_two": lines[:-2], "drop_first": lines[1:],
            "drop_first_two": lines[2:], "empty": [], "delete_file": None}[attack]
    if kept is None:
        path.unlink()
    else:
        path.write_bytes(b"".join(kept))
    with pytest.raises(AuditError):
        verify(path, key=KEY)


def _rechain(lines, key, start):
    """What an attacker does after editing entry `start`: recompute every later link with `key`."""
    out = [json.loads(line) for line in lines]
    for i in range(start, len(out)):
        if i:
            out[i]["prev"] = out[i - 1]["mac"]
        body = {k: v for k, v in out[i].items() if k != "mac"}
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        out[i]["mac"] = hmac.new(key, data, hashlib.sha256).hexdigest()
    return b"".join((json.dumps(e, sort_keys=True) + "\n").encode() for e in out)


def test_an_edited_and_rechained_history_is_refused_without_the_key(tmp_path):
    _, path = _log(tmp_path)
    lines = _lines(path)
    edited = json.loads(lines[2])
    edited["person_id"] = "someone-else"
    plain = [lines[0], lines[1], (json.dumps(edited, sort_keys=True) + "\n").encode(), *lines[3:]]
    path.write_bytes(b"".join(plain))
    with pytest.raises(AuditError, match="mac"):
        verify(path, key=KEY)
    path.write_bytes(_rechain(plain, b"x" * 32, 2))   # every later link recomputed with a guessed key
    with pytest.raises(AuditError, match="mac"):
        verify(path, key=KEY)
    # SHA-256 recomputation, as the old unkeyed chain allowed, fails the same way
    forged = json.loads(lines[-1])
    forged.update(seq=forged["seq"] + 1, prev=forged["mac"], event="accept", person_id="p999")
    forged["mac"] = hashlib.sha256(json.dumps({k: v for k, v in forged.items() if k != "mac"}).encode()).hexdigest()
    path.write_bytes(b"".join(lines) + (json.dumps(forged) + "\n").encode())
    with pytest.raises(AuditError, match="mac"):
        verify(path, key=KEY)
    path.write_bytes(b"".join(lines))
    assert verify(path, key=KEY)["entries"] == 6


def test_an_edited_seal_is_refused(tmp_path):
    _, path = _log(tmp_path)
    path.write_bytes(b"".join(_lines(path)[:-1]))
    seal = json.loads(seal_path(path).read_text())
    seal["tail"]["seq"] -= 1                           # hide the truncation in the seal too
    seal_path(path).write_text(json.dumps(seal))
    with pytest.raises(AuditError, match="seal"):
        verify(path, key=KEY)
    seal_path(path).unlink()
    with pytest.raises(AuditError, match="seal"):
        verify(path, key=KEY)


def test_rotation_manifest_detects_a_missing_file(tmp_path):
    log, path = _log(tmp_path, n=40, max_bytes=600, keep=4)
    rotated = rotated_files(path)
    assert len(rotated) == 4
    info = verify(path, key=KEY)
    assert info["entries"] < 41 and info["pruned_before"] > 1     # oldest files pruned, anchored by the seal
    oldest, newest = list(rotated.values())[0], list(rotated.values())[-1]
    for victim in (oldest, newest, path):
        saved = victim.read_bytes()
        victim.unlink()
        with pytest.raises(AuditError):
            verify(path, key=KEY)
        victim.write_bytes(saved)
    # cutting the tail of a rotated file is caught by the manifest
    saved = newest.read_bytes()
    newest.write_bytes(b"".join(_lines(newest)[:-1]))
    with pytest.raises(AuditError):
        verify(path, key=KEY)
    newest.write_bytes(saved)
    assert verify(path, key=KEY)["last_seq"] == 41
    # a reopened log continues the chain
    AuditLog(path, key=KEY, max_bytes=600, keep=4).append("stopped")
    assert verify(path, key=KEY)["last_seq"] == 42


@pytest.mark.parametrize("junk", [b"[]", b"42", b"null", b"\xff\xfe{}", b'{"seq": 2, "seq": 3}', b"{",
                                  b'{"seq": "2", "prev": "", "mac": "", "event": "", "time": ""}'])
def test_malformed_lines_name_the_line_and_never_crash(tmp_path, junk):
    _, path = _log(tmp_path, n=3)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:2]) + junk + b"\n" + b"".join(lines[2:]))
    with pytest.raises(AuditError, match=r"audit.jsonl:3"):
        verify(path, key=KEY)


def test_cli_exit_13_for_tampering_and_no_traceback(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", door_id="front")
    log.append("accept", person_id="p1")
    path, key_file = tmp_path / "audit.jsonl", default_key_path(tmp_path / "audit.jsonl")
    ok = _cli_verify(path)
    assert ok.returncode == 0 and "audit log OK" in ok.stdout and "door front" in ok.stdout
    lines = _lines(path)
    for junk in (b"null\n", b"\xff\n", b'{"a": 1, "a": 2}\n'):
        path.write_bytes(lines[0] + junk + lines[1])
        res = _cli_verify(path, key_file)
        assert res.returncode == 13 and "Traceback" not in res.stderr and "audit.jsonl:2" in res.stderr
    path.write_bytes(lines[0])                       # last entry deleted
    res = _cli_verify(path)
    assert res.returncode == 13 and "seal records" in res.stderr
    other = tmp_path / "other.key"
    other.write_bytes(secrets.token_bytes(32))
    other.chmod(0o600)
    res = _cli_verify(path, other)
    assert res.returncode == 13 and "key" in res.stderr


def test_a_torn_last_line_is_quarantined_and_the_door_starts(tmp_path, caplog):
    _, path = _log(tmp_path, n=3)
    good = path.read_bytes()
    with open(path, "ab") as fh:   # a power cut in the middle of the next append: never sealed
        fh.write(b'{"event": "accept", "mac": "12')
    with pytest.raises(AuditError, match="incomplete"):
        verify(path, key=KEY)
    log = AuditLog(path, key=KEY)
    torn = list(tmp_path.glob("audit.jsonl.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == b'{"event": "accept", "mac": "12'
    assert stat.S_IMODE(torn[0].stat().st_mode) == 0o600
    assert path.read_bytes().startswith(good)
    last = json.loads(_lines(path)[-1])
    assert last["event"] == "recovered" and torn[0].name in last["reason"]
    assert "torn last line" in caplog.text
    log.append("stopped")
    assert verify(path, key=KEY)["entries"] == 6


def test_damage_that_is_not_a_torn_tail_stops_the_door(tmp_path):
    _, path = _log(tmp_path, n=4)
    lines = _lines(path)
    path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[2:]))
    AuditLog(path, key=KEY)    # the tail is intact: the door starts, verify names the damage
    with pytest.raises(AuditError, match=":2"):
        verify(path, key=KEY)
    path.write_bytes(b"".join(lines[:-1]))       # a sealed entry is gone: refuse to start
    with pytest.raises(AuditError, match="seal records"):
        AuditLog(path, key=KEY)
    path.write_bytes(b"".join(lines[:-1]) + b"}{ damaged sealed line\n")
    with pytest.raises(AuditError):
        AuditLog(path, key=KEY)


def test_an_entry_written_before_the_seal_moved_still_verifies(tmp_path):
    log, path = _log(tmp_path, n=3)
    seal_before = seal_path(path).read_bytes()
    log.append("accept", person_id="p9")
    seal_path(path).write_bytes(seal_before)     # power cut after the entry's fsync, before the seal's
    info = verify(path, key=KEY)
    assert info["unsealed"] == 1 and info["entries"] == 5
    AuditLog(path, key=KEY).append("started")
    assert verify(path, key=KEY)["unsealed"] == 0


def test_a_rotation_cut_short_by_a_crash_is_adopted(tmp_path):
    log, path = _log(tmp_path, n=3, max_bytes=10**6)
    seal_before = seal_path(path).read_bytes()
    os.replace(path, path.with_name("audit.jsonl.1"))   # renamed, seal not yet written
    seal_path(path).write_bytes(seal_before)
    assert verify(path, key=KEY)["entries"] == 4
    AuditLog(path, key=KEY).append("started")
    info = verify(path, key=KEY)
    assert info["entries"] == 5 and info["files"] == ["audit.jsonl.1", "audit.jsonl"]


def test_an_unsealed_older_log_is_set_aside_not_continued(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"seq": 1, "hash": "abc", "event": "started"}\n')   # the unkeyed format
    AuditLog(path, key=KEY, door_id="front").append("started")
    aside = list(tmp_path.glob("audit.jsonl.unsealed-*"))
    assert len(aside) == 1
    first = json.loads(_lines(path)[0])
    assert first["event"] == "genesis" and first["set_aside"] == ["audit.jsonl"]
    info = verify(path, key=KEY)
    assert info["entries"] == 2 and info["set_aside"] == ["audit.jsonl"]
    key_file = tmp_path / "k"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    res = _cli_verify(path, key_file)
    assert res.returncode == 0 and "setting aside an unsealed older log (audit.jsonl)" in res.stdout


def test_a_log_of_another_key_is_not_continued(tmp_path):
    _, path = _log(tmp_path, n=1)
    with pytest.raises(AuditError, match="another key|modified"):
        AuditLog(path, key=b"z" * 32)


def test_keygen_writes_a_private_key_the_door_uses_and_never_overwrites_it(tmp_path):
    key_file = tmp_path / "audit.key"
    cmd = [sys.executable, "-m", "facegate.apps.cli", "audit", "keygen", "--out", str(key_file)]
    made = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    assert len(key) == 32 and key_id(key) in made.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 13 and "never overwritten" in again.stderr and "Traceback" not in again.stderr
    assert key_file.read_bytes() == key
    log = AuditLog(tmp_path / "audit.jsonl", door_id="front", key_file=key_file)
    log.append("accept", person_id="p1")
    assert not default_key_path(tmp_path / "audit.jsonl").exists()
    assert _cli_verify(tmp_path / "audit.jsonl", key_file).returncode == 0


def test_entries_from_several_threads_keep_one_chain(tmp_path):
    """The door records from its loop and from the status server's threads (badge claims) at once: every
    entry must get its own sequence number and link (a soak once wrote two entries numbered 4)."""
    import threading
    log = AuditLog(tmp_path / "audit.jsonl", key=KEY, door_id="front", max_bytes=20_000)
    start = threading.Barrier(6)

    def write(i: int) -> None:
        start.wait()
        for j in range(40):
            log.append("claim", n=i * 100 + j)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = verify(tmp_path / "audit.jsonl", key=KEY)
    assert r["entries"] == r["last_seq"] == 241                     # the genesis entry and 240 claims
