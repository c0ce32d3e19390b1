"""Compact templates: int8 with one scale per template (gallery format 2), older format-1 galleries still
opening, the integer-product ranking giving the float path's people and scores, `gallery convert`."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegate.edge.errors import GalleryCorruptError
from facegate.edge.gallery import GalleryStore, KeySource, Matcher, ModelBinding
from facegate.edge.gallery.fileformat import read_header, template_bytes
from facegate.edge.gallery.int8_scoring import Int8Scorer, quantize_rows
from facegate.edge.gallery.records import Gallery

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_KEY = KeySource("raw", bytes(range(32)))   # the key the format-1 fixtures were written with
BINDING = ModelBinding("test-embedder", "5e" * 32, 16)


def unit(rng, n, d=16):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_quantize_rows_uses_the_whole_range_per_template():
    rng = np.random.default_rng(0)
    v = unit(rng, 50, 128)
    v[0] *= 1e-3                                        # a tiny vector keeps its precision (its own scale)
    codes, scales = quantize_rows(v)
    assert codes.dtype == np.int8 and np.all(np.abs(codes).max(axis=1) == 127)
    err = np.abs(codes * scales[:, None] - v).max(axis=1)
    assert np.all(err <= scales / 2 + 1e-9)
    assert err[0] < 1e-5


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_format_1_galleries_still_open_and_are_rewritten_as_format_2(tmp_path, dtype):
    path = tmp_path / "old.fgg"
    path.write_bytes((FIXTURES / f"gallery_v1_{dtype}.fgg").read_bytes())
    store = GalleryStore(path, FIXTURE_KEY)
    assert store.header()["format"] == 1
    g = store.load()
    assert sorted(p.name for p in g.people.values()) == ["Ada", "Grace"] and g.templates.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(g.templates, axis=1), 1, atol=0.02)
    if dtype == "int8":                                 # format 1 int8: code / 127
        np.testing.assert_allclose(g.templates * 127, np.round(g.templates * 127), atol=1e-4)
    before = g.templates.copy()
    with store.transaction() as g2:
        g2.rename("Ada", "Ada L.")
    assert store.header()["format"] == 2
    again = store.load()
    assert again.find("Ada L.").name == "Ada L."
    np.testing.assert_allclose(again.templates, before, atol=1 / 254)


def test_int8_file_holds_codes_and_scales_and_a_bad_scale_is_corruption(tmp_path):
    from facegate.edge.gallery.fileformat import decode_body, encode_body
    rng = np.random.default_rng(1)
    g = Gallery(BINDING, "int8")
    g.add_templates(g.add_person("P").id, unit(rng, 3))
    body = encode_body(g)
    assert template_bytes("int8", 3, 16) == 3 * 16 + 3 * 4
    back = decode_body(body, BINDING, "int8", False)
    np.testing.assert_allclose(back.templates, g.templates, atol=np.abs(g.templates).max() / 254 + 1e-7)
    # a zero scale (no writer makes one) is refused, not turned into zero templates
    bad = body[:-12] + np.zeros(3, "<f4").tobytes()
    with pytest.raises(ValueError, match="scale"):
        decode_body(bad, BINDING, "int8", False)
    # a format-2 int8 body read as format 1 does not fit (its length is checked)
    with pytest.raises(ValueError, match="agree"):
        decode_body(body, BINDING, "int8", False, fmt=1)


def _big_gallery(rng, people=3000, dim=128, dtype="int8"):
    g = Gallery(ModelBinding("t", "5e" * 32, dim), dtype)
    counts = rng.integers(1, 4, size=people)
    g.person_order = [f"{i:012x}" for i in range(people)]
    from facegate.edge.gallery.records import Person
    g.people = {pid: Person(pid, f"person {i}") for i, pid in enumerate(g.person_order)}
    g.owners = np.repeat(np.arange(people), counts)
    codes, scales = quantize_rows(unit(rng, len(g.owners), dim))
    g.templates = codes * scales[:, None]              # what an int8 gallery holds after loading
    return g


def test_integer_ranking_gives_the_float_paths_people_and_scores():
    rng = np.random.default_rng(2)
    g = _big_gallery(rng)
    fast, exact = Matcher(g, 0.6, int8_scorer=True), Matcher(g, 0.6, int8_scorer=False)
    assert fast._int8 is not None and exact._int8 is None
    probes = g.templates[rng.integers(0, len(g.templates), 40)] + 0.25 * rng.normal(size=(40, 128)).astype(np.float32)
    for probe in probes:
        a, b = fast.top_people(probe, 5), exact.top_people(probe, 5)
        assert [o for o, _ in a] == [o for o, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
    many = fast.identify_many(probes[:8], top_k=3)
    for r, probe in zip(many, probes[:8]):
        e = exact.identify(probe, top_k=3)
        assert (r.decision, r.person_id, [c[0] for c in r.candidates]) == (e.decision, e.person_id,
                                                                         [c[0] for c in e.candidates])
    claimed = g.person_order[g.owners[5]]
    assert fast.verify(g.templates[5], claimed).score == pytest.approx(exact.verify(g.templates[5], claimed).score,
                                                                      abs=1e-5)


def test_either_kernel_gives_the_same_people_and_scores(monkeypatch):
    """The MatMulInteger fallback (an ONNX Runtime without 8-bit MatMulNBits) decides as the default does."""
    from facegate.edge.gallery import int8_scoring
    rng = np.random.default_rng(6)
    g = _big_gallery(rng, 2500)
    default = Matcher(g, 0.6)
    assert default._int8.kernel == "MatMulNBits"
    real = int8_scoring.matmul_nbits_model
    monkeypatch.setattr(int8_scoring, "matmul_nbits_model", lambda *a: real(*a)[:-40])   # a model ORT refuses
    fallback = Matcher(g, 0.6)
    assert fallback._int8.kernel == "MatMulInteger"
    for probe in g.templates[rng.integers(0, len(g.templates), 10)] + 0.2 * rng.normal(size=(10, 128)):
        a, b = default.top_people(probe.astype(np.float32), 5), fallback.top_people(probe.astype(np.float32), 5)
        assert a == b


def test_int8_galleries_get_the_integer_scorer_by_default_float_ones_do_not():
    rng = np.random.default_rng(3)
    assert Matcher(_big_gallery(rng, 2500), 0.5)._int8 is not None          # 2500 people, >= 4096 templates
    assert Matcher(_big_gallery(rng, 2500, dtype="float32"), 0.5)._int8 is None
    assert Matcher(_big_gallery(rng, 20), 0.5)._int8 is None                 # small: the float product


@pytest.mark.parametrize("kernel", ["MatMulNBits", "MatMulInteger"])
def test_ranking_scores_follow_the_cosines(kernel):
    rng = np.random.default_rng(4)
    v = unit(rng, 5000, 128)
    scorer = Int8Scorer(*quantize_rows(v), kernel=kernel)
    assert scorer.kernel == kernel
    probe = v[17]
    ranking = scorer.ranking_scores(probe)[0]
    exact = v @ probe
    assert np.argmax(ranking) == 17
    assert np.corrcoef(ranking, exact)[0, 1] > 0.999
    rows = np.array([17, 3, 4000])
    np.testing.assert_allclose(scorer.rescore(probe, rows), exact[rows], atol=0.01)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "facegate.apps.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_gallery_convert_cli(tmp_path):
    import os
    keyfile = tmp_path / "k"
    keyfile.write_bytes(bytes(range(32)))
    os.chmod(keyfile, 0o600)
    store = GalleryStore(tmp_path / "g.fgg", KeySource.from_keyfile(keyfile))
    store.create(BINDING)
    rng = np.random.default_rng(5)
    with store.transaction() as g:
        for i in range(30):
            g.add_templates(g.add_person(f"p{i}").id, unit(rng, 2))
    size32 = store.path.stat().st_size
    r = _cli("gallery", "convert", "--gallery", str(store.path), "--key-file", str(keyfile), "--template-dtype", "int8")
    assert r.returncode == 0, r.stderr
    assert "float32 x 16 -> int8 x 16" in r.stdout
    assert read_header(store.path.read_bytes())[0]["template_dtype"] == "int8"
    # the file shrinks by the templates' bytes (and the header's three letters "float32" -> "int8")
    assert size32 - store.path.stat().st_size == 60 * 16 * 4 - template_bytes("int8", 60, 16) + 3
    g = store.load()
    assert len(g.people) == 30 and g.template_dtype == "int8"
    r = _cli("gallery", "convert", "--gallery", str(store.path), "--key-file", str(keyfile), "--template-dtype",
             "float32")
    assert r.returncode != 0 and "recovers no precision" in r.stderr and "Traceback" not in r.stderr
    assert read_header(store.path.read_bytes())[0]["template_dtype"] == "int8"
    json.dumps(store.check())


def test_a_format_1_header_with_a_format_2_int8_body_does_not_open(tmp_path):
    """The format number is authenticated: editing it to read the body the other way is tampering."""
    path = tmp_path / "g.fgg"
    path.write_bytes((FIXTURES / "gallery_v1_int8.fgg").read_bytes())
    store = GalleryStore(path, FIXTURE_KEY)
    with store.transaction():
        pass                                            # rewritten as format 2
    blob = path.read_bytes()
    edited = blob.replace(b'"format": 2', b'"format": 1')
    assert edited != blob
    path.write_bytes(edited)
    with pytest.raises(GalleryCorruptError):
        store.load()
