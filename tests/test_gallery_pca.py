"""PCA-reduced templates: the projection (fit, file, digest), galleries that carry it (format 2 header and
body, refusals), matching with the projection's own thresholds, the committed projection of the default
embedder, and `gallery convert --pca` end to end with real faces."""
import base64
import json
import secrets

import numpy as np
import pytest

from facegate.edge.errors import GalleryCorruptError, GalleryError, ModelError
from facegate.edge.gallery import GalleryStore, KeySource, Matcher, ModelBinding
from facegate.edge.gallery.fileformat import decode_body, encode_body, read_header
from facegate.edge.gallery.matching import gallery_thresholds
from facegate.edge.gallery.projection import Projection, fit_projection, projection_path
from facegate.edge.gallery.records import Gallery

BINDING = ModelBinding("test-embedder", "5e" * 32, 16)


def low_rank(rng, n, rank=6, dim=16):
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0].T
    v = rng.normal(size=(n, rank)) @ basis + 0.01 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def projection():
    p = fit_projection(low_rank(np.random.default_rng(0), 400), 8, BINDING.sha256, {"fitted_on": "synthetic"})
    return Projection(p.mean, p.components, p.model_sha256, {"1e-2": 0.3, "1e-3": 0.45}, p.info)


def test_fit_keeps_the_variance_and_the_file_round_trips(tmp_path, projection):
    assert projection.dims == 8 and projection.input_dim == 16 and projection.info["variance_kept"] > 0.99
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(8), atol=1e-5)
    out = projection.apply(low_rank(np.random.default_rng(0), 5))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    path = projection.save(tmp_path / "m.tflite.pca8.npz")
    back = Projection.load(path)
    assert back.sha256 == projection.sha256 and back.thresholds == projection.thresholds
    assert projection_path(tmp_path / "m.tflite", 8) == path
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GalleryError, match="not a facegate PCA projection"):
        Projection.load(tmp_path / "junk.npz")
    with pytest.raises(GalleryError, match="calibrate pca"):
        Projection.load(tmp_path / "missing.npz")
    # its digest covers the thresholds: an edited threshold is another projection
    edited = Projection(projection.mean, projection.components, projection.model_sha256, {"1e-3": 0.1})
    assert edited.sha256 != projection.sha256


def test_a_projected_gallery_round_trips_and_matches_with_its_own_thresholds(tmp_path, projection):
    rng = np.random.default_rng(1)
    store = GalleryStore(tmp_path / "g.fgg", KeySource("raw", secrets.token_bytes(32)))
    g = Gallery(BINDING, "int8", projection=projection)
    faces = {}
    for name in ("Ada", "Grace", "Linus"):
        faces[name] = low_rank(rng, 3)
        g.add_templates(g.add_person(name).id, faces[name][:2])
    store.save(g)
    header = store.header()
    assert header["format"] == 2 and header["projection"] == {"dims": 8, "sha256": projection.sha256}
    loaded = store.load(expect=BINDING)
    assert loaded.templates.shape == (6, 8) and loaded.projection.sha256 == projection.sha256
    accept, retry = gallery_thresholds(loaded, {"1e-3": 0.99, "1e-2": 0.98})
    assert (accept, retry) == (0.45, 0.3)                    # the projection's, not the card's
    m = Matcher(loaded, accept, retry)
    probe = faces["Grace"][0]                                # an embedding of the model: 16 numbers
    r = m.identify(probe)
    assert r.name == "Grace" and r.score > 0.95
    assert m.verify(probe, "Grace").score == pytest.approx(r.score, abs=1e-6)
    with pytest.raises(ModelError, match="no threshold for FAR 1e-4"):
        gallery_thresholds(loaded, {}, "1e-4")


def test_projection_refusals(projection):
    other_model = Projection(projection.mean, projection.components, "ab" * 32, projection.thresholds)
    with pytest.raises(GalleryError, match="another model"):
        Gallery(BINDING, projection=other_model)
    g = Gallery(BINDING, projection=projection)
    second = Projection(projection.mean, projection.components[::-1].copy(), BINDING.sha256, projection.thresholds)
    with pytest.raises(GalleryError, match="already PCA-reduced"):
        g.set_projection(second)
    g.set_projection(projection)                              # the same one again: nothing happens


def test_body_and_header_must_name_the_same_projection(projection):
    g = Gallery(BINDING, projection=projection)
    g.add_templates(g.add_person("P").id, low_rank(np.random.default_rng(2), 2))
    body = encode_body(g)
    named = {"dims": 8, "sha256": projection.sha256}
    assert decode_body(body, BINDING, "float32", False, 2, named).projection.sha256 == projection.sha256
    with pytest.raises(ValueError, match="not the one the header names"):
        decode_body(body, BINDING, "float32", False, 2, {"dims": 8, "sha256": "00" * 32})
    with pytest.raises(ValueError, match="does not name"):
        decode_body(body, BINDING, "float32", False, 2, None)


def test_a_header_edited_to_drop_the_projection_is_tampering(tmp_path, projection):
    store = GalleryStore(tmp_path / "g.fgg", KeySource("raw", secrets.token_bytes(32)))
    g = Gallery(BINDING, projection=projection)
    g.add_templates(g.add_person("P").id, low_rank(np.random.default_rng(3), 2))
    store.save(g)
    blob = store.path.read_bytes()
    header, _, _ = read_header(blob)
    text = json.dumps(header, sort_keys=True).encode()
    edited_header = json.dumps({**header, "projection": None}, sort_keys=True).encode()
    assert text in blob
    import hashlib
    import struct
    prefix_end = 12 + len(text) + 32
    forged = (b"FGGALLRY" + struct.pack(">I", len(edited_header)) + edited_header
              + hashlib.sha256(edited_header).digest() + blob[prefix_end:])
    store.path.write_bytes(forged)
    with pytest.raises(GalleryCorruptError):
        store.load()


def test_importing_a_bundle_of_another_template_space_is_refused(tmp_path, projection):
    key = KeySource("raw", secrets.token_bytes(32))
    plain = GalleryStore(tmp_path / "plain.fgg", key)
    g = Gallery(BINDING)
    g.add_templates(g.add_person("A").id, low_rank(np.random.default_rng(4), 2))
    plain.save(g)
    reduced = GalleryStore(tmp_path / "reduced.fgg", key)
    h = Gallery(BINDING, projection=projection)
    h.add_templates(h.add_person("B").id, low_rank(np.random.default_rng(5), 2))
    reduced.save(h)
    before = reduced.path.read_bytes()
    with pytest.raises(GalleryError, match="another space"):
        reduced.import_from(plain.path, key)
    assert reduced.path.read_bytes() == before
    same = GalleryStore(tmp_path / "same.fgg", key)
    k = Gallery(BINDING, projection=projection)
    k.add_templates(k.add_person("C").id, low_rank(np.random.default_rng(6), 2))
    same.save(k)
    assert reduced.import_from(same.path, key) == ["C"]
    merged = reduced.load()
    np.testing.assert_allclose(merged.templates[-2:], k.templates, atol=1e-6)


def test_the_committed_projection_belongs_to_the_default_embedder(embedder_path):
    from facegate.edge.cards import load_card
    path = projection_path(embedder_path, 64)
    p = Projection.load(path)
    card = load_card(embedder_path)
    assert p.model_sha256 == card.sha256 and p.input_dim == card.embedding_dim and p.dims == 64
    assert p.info["variance_kept"] >= 0.999 and {"1e-2", "1e-3"} <= set(p.thresholds)
    assert "LFW people outside pairs.txt" in p.info["fitted_on"]


@pytest.mark.slow
def test_convert_to_pca_then_identify_with_real_faces(tmp_path, monkeypatch, celeb5, embedder_path, capsys):
    from facegate.apps.cli import main
    from facegate.edge.images import list_images
    monkeypatch.setenv("FACEGATE_GALLERY_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.delenv("FACEGATE_GALLERY_PASSPHRASE", raising=False)
    gallery = tmp_path / "door.fgg"
    for person in ("ben_afflek", "jerry_seinfeld", "madonna"):
        photos = [str(p) for p in list_images(celeb5 / "train" / person)[:5]]
        assert main(["enroll", "--gallery", str(gallery), "--name", person, "--embedder", str(embedder_path),
                     *photos]) == 0
    size = gallery.stat().st_size
    pca = projection_path(embedder_path, 64)
    assert main(["gallery", "convert", "--gallery", str(gallery), "--pca", str(pca), "--template-dtype", "int8"]) == 0
    assert "float32 x 128 -> int8 x 64" in capsys.readouterr().out
    # 15 templates: int8 x 64 + a scale instead of 128 float32 each, plus the projection itself (about 44 kB)
    assert size + 36_000 < gallery.stat().st_size < size + 48_000
    assert read_header(gallery.read_bytes())[0]["projection"]["dims"] == 64
    probe = str(list_images(celeb5 / "val" / "jerry_seinfeld")[0])
    assert main(["identify", "--gallery", str(gallery), probe, "--json", "--embedder", str(embedder_path)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["name"] == "jerry_seinfeld" and out["accept_threshold"] == Projection.load(pca).thresholds["1e-3"]
    stranger = str(list_images(celeb5 / "val" / "elton_john")[0])
    assert main(["identify", "--gallery", str(gallery), stranger, "--json", "--no-quality",
                 "--embedder", str(embedder_path)]) == 11
    # back to full templates is impossible without crops: refused, file untouched
    before = gallery.read_bytes()
    other = tmp_path / "other.npz"
    p = Projection.load(pca)
    Projection(p.mean, p.components[:32].copy(), p.model_sha256, p.thresholds).save(other)
    assert main(["gallery", "convert", "--gallery", str(gallery), "--pca", str(other)]) != 0
    assert "already PCA-reduced" in capsys.readouterr().err
    assert gallery.read_bytes() == before
