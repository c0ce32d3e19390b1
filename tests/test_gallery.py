"""The encrypted gallery: round trip, secrecy on disk, tamper/truncation/wrong key, crash safety,
locking, rekey/export/import, model binding, matching decisions."""
import datetime as dt
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from facegate.edge.errors import (
    GalleryCorruptError,
    GalleryError,
    GalleryLockedError,
    KeyFileError,
    ModelMismatchError,
    PersonNotFoundError,
    WrongKeyError,
)
from facegate.edge.gallery import Decision, GalleryStore, KeySource, Matcher, ModelBinding
from facegate.edge.gallery.keys import write_keyfile

BINDING = ModelBinding("test-embedder", "5e" * 32, 16)
FAST = 2 ** 10  # scrypt cost for tests; the default is checked once below


def key(pw="correct horse"):
    return KeySource.from_passphrase(pw, scrypt_n=FAST)


def unit(rng, n, d=16):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture()
def filled(tmp_path):
    rng = np.random.default_rng(0)
    store = GalleryStore(tmp_path / "door.fgg", key())
    store.create(BINDING, keep_crops=True)
    vecs = {}
    with store.transaction(BINDING) as g:
        for name, ext in (("Alice Martin", "EMP-0042"), ("Bob Stone", "EMP-0077"), ("Chloé Dupont", "EMP-1001")):
            p = g.add_person(name, external_id=ext, groups=["lobby"])
            vecs[name] = unit(rng, 3)
            g.add_templates(p.id, vecs[name], [f"JPEGCROP-{name}-{i}".encode() for i in range(3)])
    return store, vecs


def test_round_trip(filled):
    store, vecs = filled
    g = GalleryStore(store.path, key()).load(expect=BINDING)
    assert sorted(p.name for p in g.people.values()) == sorted(vecs)
    alice = g.find("Alice Martin")
    sel = g.owners == g.person_order.index(alice.id)
    np.testing.assert_allclose(g.templates[sel], vecs["Alice Martin"], atol=1e-6)
    assert g.find("EMP-0077").name == "Bob Stone"
    assert g.crops[0].startswith(b"JPEGCROP-")


def test_nothing_personal_or_biometric_in_plaintext(filled):
    store, vecs = filled
    raw = store.path.read_bytes()
    for needle in [b"Alice", b"Martin", b"Bob", b"EMP-0042", b"lobby", b"JPEGCROP", "Chloé".encode(), b"correct horse"]:
        assert needle not in raw
    for v in vecs.values():  # templates in any of the storable encodings
        for enc in (v.astype("<f4").tobytes(), v.astype("<f2").tobytes(), v[0].astype("<f4").tobytes()[:16]):
            assert enc not in raw
    g = store.load()
    for pid in g.people:
        assert pid.encode() not in raw


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float16", 2e-3), ("int8", 1e-2)])
def test_template_storage_dtypes(tmp_path, dtype, tol):
    rng = np.random.default_rng(1)
    store = GalleryStore(tmp_path / "g.fgg", key())
    store.create(BINDING, template_dtype=dtype)
    v = unit(rng, 4)
    with store.transaction() as g:
        g.add_templates(g.add_person("P").id, v)
    np.testing.assert_allclose(store.load().templates, v, atol=tol)


def test_wrong_key_is_specific_and_file_untouched(filled):
    store, _ = filled
    before = store.path.read_bytes()
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        GalleryStore(store.path, key("battery staple")).load()
    with pytest.raises(KeyFileError, match="passphrase"):
        GalleryStore(store.path, KeySource("raw", b"k" * 32)).load()
    assert store.path.read_bytes() == before


def test_byte_flips_anywhere_are_detected(filled):
    store, _ = filled
    original = store.path.read_bytes()
    positions = sorted({*range(0, 64), *np.linspace(64, len(original) - 1, 150).astype(int).tolist()})
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 0x01
        store.path.write_bytes(bytes(data))
        with pytest.raises(GalleryCorruptError):  # never mistaken for a wrong key
            GalleryStore(store.path, key()).load()
    store.path.write_bytes(original)
    assert len(GalleryStore(store.path, key()).load().people) == 3


@pytest.mark.parametrize("keep", [0, 8, 40, -1, -17])
def test_truncated_file(filled, keep):
    store, _ = filled
    data = store.path.read_bytes()
    store.path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(GalleryCorruptError):
        GalleryStore(store.path, key()).load()


def test_model_binding_refuses_other_model(filled):
    store, _ = filled
    other = ModelBinding("student", "77" * 32, 16)
    with pytest.raises(ModelMismatchError, match="reembed"):
        store.load(expect=other)
    header = store.header()
    assert header["model"]["sha256"] == BINDING.sha256 and "people" not in header


def test_operations_remove_rename_validity(filled):
    store, vecs = filled
    with store.transaction() as g:
        g.remove("Bob Stone")
        g.rename("Alice Martin", "Alice M.")
        with pytest.raises(GalleryError, match="already"):
            g.add_person("Chloé Dupont")
        with pytest.raises(GalleryError, match="ISO"):
            g.add_person("Dan", valid_until="next tuesday")
    g = store.load()
    assert sorted(p.name for p in g.people.values()) == ["Alice M.", "Chloé Dupont"]
    assert len(g.templates) == 6 and set(g.owners.tolist()) == {0, 1}
    chloe = g.find("Chloé Dupont")
    np.testing.assert_allclose(g.templates[g.owners == g.person_order.index(chloe.id)], vecs["Chloé Dupont"], atol=1e-6)
    with pytest.raises(PersonNotFoundError):
        g.find("Bob Stone")


def test_failed_transaction_writes_nothing(filled):
    store, _ = filled
    before = store.path.read_bytes()
    with pytest.raises(RuntimeError):
        with store.transaction() as g:
            g.remove("Alice Martin")
            raise RuntimeError("power cut simulated in code")
    assert store.path.read_bytes() == before


def test_rekey_export_import(filled, tmp_path):
    store, vecs = filled
    store.rekey(key("new passphrase"))
    with pytest.raises(WrongKeyError):
        GalleryStore(store.path, key()).load()
    assert len(GalleryStore(store.path, key("new passphrase")).load().people) == 3
    bundle = store.export_to(tmp_path / "bundle.fgg", key("transfer"))
    other = GalleryStore(tmp_path / "other.fgg", KeySource("raw", b"\x01" * 32))
    other.create(BINDING, keep_crops=True)
    assert sorted(other.import_from(bundle, key("transfer"))) == sorted(vecs)
    with pytest.raises(GalleryError, match="already in this gallery"):
        other.import_from(bundle, key("transfer"))
    assert other.check()["templates"] == 9


def test_keyfile_permissions_and_env(tmp_path, monkeypatch):
    kf = write_keyfile(tmp_path / "gallery.key")
    assert (kf.stat().st_mode & 0o777) == 0o600
    ks = KeySource.from_keyfile(kf)
    os.chmod(kf, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeySource.from_keyfile(kf)
    monkeypatch.setenv("FACEGATE_GALLERY_KEY", __import__("base64").b64encode(ks.secret).decode())
    assert KeySource.from_env().secret == ks.secret
    monkeypatch.delenv("FACEGATE_GALLERY_KEY")
    with pytest.raises(KeyFileError, match="no gallery key"):
        KeySource.from_env()


def test_default_scrypt_cost_round_trip(tmp_path):
    store = GalleryStore(tmp_path / "g.fgg", KeySource.from_passphrase("pw"))
    store.create(BINDING)
    assert store.header()["kdf"]["n"] == 2 ** 15
    assert GalleryStore(tmp_path / "g.fgg", KeySource.from_passphrase("pw")).load().people == {}


WRITER = r"""
import sys, numpy as np
from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
store = GalleryStore(sys.argv[1], KeySource.from_passphrase("pw", scrypt_n=2**10), lock_timeout=60)
rng = np.random.default_rng(int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    with store.transaction() as g:
        p = g.add_person(f"w{sys.argv[2]}-{i}")
        g.add_templates(p.id, rng.normal(size=(200, 16)))
    print(i, flush=True)
"""


def test_kill_during_writes_leaves_old_or_new(tmp_path):
    path = tmp_path / "g.fgg"
    store = GalleryStore(path, KeySource.from_passphrase("pw", scrypt_n=2 ** 10))
    store.create(BINDING)
    rng = np.random.default_rng(7)
    seen_counts = []
    for round_ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_), "1000"],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(0.4 + float(rng.uniform(0, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        g = GalleryStore(path, KeySource.from_passphrase("pw", scrypt_n=2 ** 10)).load()
        n = len(g.people)
        assert len(g.templates) == 200 * n  # a whole number of committed writes, never a partial one
        seen_counts.append(n)
    assert seen_counts == sorted(seen_counts) and seen_counts[-1] > 0
    # a later writer cleans the temp files dead writers left behind
    with store.transaction():
        pass
    assert not list(tmp_path.glob(".fg-tmp-*"))


def test_concurrent_writers_are_serialised(tmp_path):
    path = tmp_path / "g.fgg"
    GalleryStore(path, KeySource.from_passphrase("pw", scrypt_n=2 ** 10)).create(BINDING)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "5"], stdout=subprocess.PIPE)
             for w in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    g = GalleryStore(path, KeySource.from_passphrase("pw", scrypt_n=2 ** 10)).load()
    assert len(g.people) == 15  # no enrolment lost to a race


def test_lock_timeout(tmp_path):
    store = GalleryStore(tmp_path / "g.fgg", key(), lock_timeout=0.2)
    store.create(BINDING)
    other = GalleryStore(tmp_path / "g.fgg", key(), lock_timeout=0.2)
    with store.locked():
        with pytest.raises(GalleryLockedError, match="try again"):
            with other.transaction():
                pass


def test_matching_decisions(filled):
    store, vecs = filled
    g = store.load()
    m = Matcher(g, accept_threshold=0.8, retry_threshold=0.6)
    alice = vecs["Alice Martin"][0]
    r = m.identify(alice)
    assert r.decision is Decision.ACCEPT and r.name == "Alice Martin" and r.score == pytest.approx(1.0, abs=1e-5)
    assert [c[1] for c in r.candidates][0] == "Alice Martin" and len(r.candidates) == 3
    assert m.verify(alice, "Alice Martin").decision is Decision.ACCEPT
    v = m.verify(alice, "Bob Stone")
    assert v.decision is Decision.REJECT and v.name == "Bob Stone"
    # a probe between thresholds asks for a retry
    rng = np.random.default_rng(5)
    noise = rng.normal(size=16)
    noise -= (noise @ alice) * alice
    noise /= np.linalg.norm(noise)
    probe = 0.7 * alice + np.sqrt(1 - 0.49) * noise
    assert m.verify(probe, "Alice Martin").decision is Decision.RETRY
    # a stranger: a unit vector orthogonal to every enrolled template scores 0 against all of them
    basis = np.linalg.qr(m.gallery.templates.T.astype(np.float64))[0]
    stranger = rng.normal(size=16)
    stranger -= basis @ (basis.T @ stranger)
    stranger /= np.linalg.norm(stranger)
    s = m.identify(stranger)
    assert s.decision is Decision.REJECT and abs(s.score) < 1e-5
    # validity window and door groups turn an accept into a reject with a reason
    with store.transaction() as g2:
        g2.find("Alice Martin").valid_until = "2020-01-01"
    r = Matcher(store.load(), 0.8, 0.6).identify(alice, when=dt.datetime(2026, 1, 1))
    assert r.decision is Decision.REJECT and "validity" in r.reasons[0]
    r = Matcher(store.load(), 0.8, 0.6).verify(vecs["Bob Stone"][1], "Bob Stone", door_group="server-room")
    assert r.decision is Decision.REJECT and "door group" in r.reasons[0]


def test_matching_top_k_on_a_large_gallery():
    from facegate.edge.gallery.records import Gallery
    rng = np.random.default_rng(2)
    g = Gallery(BINDING)
    ids = [g.add_person(f"p{i}").id for i in range(500)]
    for pid in ids:
        g.add_templates(pid, unit(rng, 2))
    m = Matcher(g, 0.9)
    target = g.templates[777]
    r = m.identify(target, top_k=3)
    assert r.person_id == g.owner_ids()[777] and len(r.candidates) == 3
    assert r.candidates[0][2] >= r.candidates[1][2] >= r.candidates[2][2]


def test_top_people_equals_the_exhaustive_ranking():
    """1:N looks only at the best top_k x (most templates of anyone) template scores; on galleries with
    uneven template counts (one person with 40) it must rank exactly as the exhaustive per-person max."""
    from facegate.edge.gallery.records import Gallery
    rng = np.random.default_rng(7)
    for trial in range(20):
        g = Gallery(BINDING)
        counts = rng.integers(1, 6, size=60)
        counts[trial % 60] = 40
        for i, c in enumerate(counts):
            g.add_templates(g.add_person(f"p{i}").id, unit(rng, int(c)))
        m = Matcher(g, 0.9)
        probe = g.templates[rng.integers(len(g.templates))] + 0.3 * rng.normal(size=16)
        scores = g.templates @ (probe / np.linalg.norm(probe))
        best = {}
        for row, owner in enumerate(g.owners):
            best[int(owner)] = max(best.get(int(owner), -2.0), float(scores[row]))
        expected = sorted(best.items(), key=lambda kv: -kv[1])[:5]
        got = m.top_people(probe, 5)
        assert [o for o, _ in got] == [o for o, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)
        r = m.verify(probe, g.person_order[expected[0][0]])
        assert r.score == pytest.approx(expected[0][1], abs=1e-5)
        batch = m.identify_many(np.stack([probe, -probe]), top_k=5)
        assert [c[0] for c in batch[0].candidates] == [g.person_order[o] for o, _ in expected]
        assert batch[0].decision is m.identify(probe).decision


def test_best_rows_always_contains_the_top_scores():
    from facegate.edge.gallery.matching import _best_rows
    rng = np.random.default_rng(3)
    for n, keep in ((10, 3), (1000, 1), (1000, 40), (100_000, 25), (5000, 5000)):
        for scores in (rng.normal(size=n).astype(np.float32), np.round(rng.normal(size=n), 1).astype(np.float32)):
            rows = _best_rows(scores, keep)
            kth = np.sort(scores)[::-1][keep - 1]
            assert set(np.flatnonzero(scores > kth)) <= set(rows.tolist()) and len(rows) >= keep
            assert np.all(scores[rows] >= scores[rows].min()) and scores[rows].min() <= kth


# ---------- crafted headers, key-check edits, first enrolments at once ----------

def _reheader(path, edit):
    """Rewrite the plaintext header with `edit(header)` and redo its checksum (no key needed)."""
    import hashlib
    import json
    import struct
    blob = path.read_bytes()
    (hlen,) = struct.unpack(">I", blob[8:12])
    header = json.loads(blob[12:12 + hlen])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(blob[:8] + struct.pack(">I", len(raw)) + raw + hashlib.sha256(raw).digest()
                     + blob[12 + hlen + 32:])


BAD_VALUES = [None, True, -1, 0, 1.5, 2 ** 64, "", "x", "!!notb64", "A" * 4000, [], {}, [1, 2], {"a": 1}]
HEADER_PATHS = [("format",), ("kdf",), ("kdf", "type"), ("kdf", "salt"), ("kdf", "n"), ("kdf", "r"), ("kdf", "p"),
                ("key_check",), ("header_mac",), ("model",), ("model", "name"), ("model", "sha256"),
                ("model", "dim"), ("model", "card_sha256"), ("template_dtype",), ("keep_crops",), ("generation",)]


def test_crafted_headers_are_refused_before_any_key_work(filled, monkeypatch):
    """Every header field set to every kind of wrong value, checksum redone: a GalleryError each time,
    never another exception, and scrypt never runs on parameters outside the bounds."""
    from facegate.edge.gallery import keys as keys_module
    store, _ = filled
    original = store.path.read_bytes()
    costs = []
    real_scrypt = keys_module.Scrypt

    def spy(**kw):
        costs.append((kw["n"], kw["r"], kw["p"]))
        return real_scrypt(**kw)
    monkeypatch.setattr(keys_module, "Scrypt", spy)
    outcomes = {}
    for where in HEADER_PATHS:
        for value in BAD_VALUES + [{"del": True}]:
            store.path.write_bytes(original)

            def edit(h, where=where, value=value):
                target = h
                for part in where[:-1]:
                    target = target[part]
                if value == {"del": True}:
                    target.pop(where[-1], None)
                else:
                    target[where[-1]] = value
            _reheader(store.path, edit)
            try:
                GalleryStore(store.path, key()).load()
                outcomes[(where, repr(value))] = "opened"
            except GalleryError as exc:
                outcomes[(where, repr(value))] = type(exc).__name__
    assert len(outcomes) == len(HEADER_PATHS) * (len(BAD_VALUES) + 1)
    opened = [k for k, v in outcomes.items() if v == "opened"]
    # the two "edits" that change nothing (this gallery's card_sha256 is "", keep_crops is true)
    assert opened == [(("model", "card_sha256"), "''"), (("keep_crops",), "True")], opened
    assert all(n * r * 128 <= 32 * 2 ** 20 and n * r * p <= 2 ** 18 for n, r, p in costs)
    for n, r, p in ((2 ** 20, 16, 4), (2 ** 16, 8, 1), (2 ** 15, 8, 2), (2 ** 15 + 1, 8, 1)):
        store.path.write_bytes(original)
        _reheader(store.path, lambda h, n=n, r=r, p=p: h["kdf"].update(n=n, r=r, p=p))
        t0 = time.perf_counter()
        with pytest.raises(GalleryCorruptError, match="out of range"):
            GalleryStore(store.path, key()).load()
        assert time.perf_counter() - t0 < 0.5


def test_an_edited_key_check_is_tampering_not_a_wrong_key(filled):
    import base64
    store, _ = filled
    _reheader(store.path, lambda h: h.update(key_check=base64.b64encode(b"\0" * 16).decode()))
    with pytest.raises(GalleryCorruptError, match="key check value was edited"):
        GalleryStore(store.path, key()).load()
    with pytest.raises(WrongKeyError):
        GalleryStore(store.path, key("another passphrase")).load()


def test_a_directory_as_key_file_is_called_a_directory(tmp_path, monkeypatch):
    with pytest.raises(KeyFileError, match="is a directory"):
        KeySource.from_keyfile(tmp_path)
    monkeypatch.delenv("FACEGATE_GALLERY_KEY", raising=False)
    monkeypatch.delenv("FACEGATE_GALLERY_PASSPHRASE", raising=False)
    with pytest.raises(KeyFileError) as err:
        KeySource.from_env()
    assert "--passphrase" not in str(err.value) and "--key-file" in str(err.value)


FIRST_ENROLMENT = r"""
import sys, numpy as np
from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
binding = ModelBinding("test-embedder", "5e" * 32, 16)
store = GalleryStore(sys.argv[1], KeySource.from_passphrase("pw", scrypt_n=2**10), lock_timeout=60)
with store.open_or_create(binding) as (g, created):
    p = g.add_person(f"first-{sys.argv[2]}")
    g.add_templates(p.id, np.random.default_rng(int(sys.argv[2])).normal(size=(2, 16)))
"""


def test_first_enrolments_at_once_all_land(tmp_path):
    """Six enrolments into a gallery that does not exist yet: one creates it, none is lost."""
    path = tmp_path / "new.fgg"
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_ENROLMENT, str(path), str(w)]) for w in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    g = GalleryStore(path, KeySource.from_passphrase("pw", scrypt_n=2 ** 10)).load()
    assert sorted(p.name for p in g.people.values()) == [f"first-{w}" for w in range(6)]
