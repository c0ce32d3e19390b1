"""The site server: store, accounts, people, verification API and every security rule, through HTTP.

One site (SQLite, real pipeline with liveness) serves the whole module; each attack test tries the
attack and asserts it fails and changed nothing. PostgreSQL runs the same store code against a real
server started here (skipped, saying why, where Debian's postgresql is not installed).
"""
from __future__ import annotations

import json
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the site server needs the `site` extra")
from conftest import DATASETS  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from servers import postgresql  # noqa: E402

from facegate.apps.cli import main  # noqa: E402
from facegate.edge.errors import SiteError, SiteRequestError  # noqa: E402
from facegate.edge.site import accounts, events, people  # noqa: E402
from facegate.edge.site.folder import init_site, open_site  # noqa: E402
from facegate.edge.site.people import PhotoResult  # noqa: E402
from facegate.edge.site.server import make_service  # noqa: E402
from facegate.edge.site.store import SiteStore  # noqa: E402
from facegate.edge.site.web import Settings, create_app  # noqa: E402

PASSWORD = "correct horse battery"
PAD = DATASETS / "pad_dev"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(client: TestClient, username: str = "admin", password: str = PASSWORD):
    nonce = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf": nonce},
                       follow_redirects=False)


def photo_files(paths: list[Path]) -> list[tuple]:
    return [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = init_site(tmp_path_factory.mktemp("site") / "site", "admin", PASSWORD)
    yield s
    s.close()


@pytest.fixture(scope="module")
def service(site):
    return make_service(site)


@pytest.fixture(scope="module")
def app(site, service):
    return create_app(site, service, Settings(login_per_minute=1000))


@pytest.fixture()
def admin(app):
    client = TestClient(app)
    assert login(client).status_code == 303
    return client


def enrol(client: TestClient, name: str, paths: list[Path], **fields):
    csrf = csrf_of(client.get("/people/new").text)
    return client.post("/people/new", data={"csrf": csrf, "name": name, **fields}, files=photo_files(paths))


def person_id_of(client: TestClient, name: str) -> str:
    page = client.get("/people", params={"q": name}).text
    return re.search(r'href="/people/([0-9a-f]{12})">' + re.escape(name) + "<", page).group(1)


# -- the store ------------------------------------------------------------------------------------------
def test_store_migrates_and_refuses_a_newer_schema(tmp_path):
    store = SiteStore(f"sqlite:///{tmp_path / 's.db'}")
    assert store.schema_version() == 0
    assert store.migrate() == 3 and store.schema_version() == 3
    assert store.one("PRAGMA journal_mode")["journal_mode"] == "wal"
    assert store.one("PRAGMA foreign_keys")["foreign_keys"] == 1
    store.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(SiteError, match="newer than this facegate"):
        store.migrate()
    store.close()
    with pytest.raises(SiteError, match="does not exist"):
        SiteStore(str(tmp_path / "missing" / "s.db"))


def test_init_makes_a_private_site_and_never_overwrites(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "s"
    monkeypatch.setenv("FACEGATE_SITE_ADMIN_PASSWORD", PASSWORD)
    assert main(["site", "init", "--data", str(folder)]) == 0
    assert (folder / "server.key").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert len((folder / "server.key").read_bytes()) == 32
    assert main(["site", "init", "--data", str(folder)]) == 18
    assert "already holds a site" in capsys.readouterr().err
    monkeypatch.setenv("FACEGATE_SITE_ADMIN_PASSWORD", "short")
    assert main(["site", "init", "--data", str(tmp_path / "t")]) == 2
    monkeypatch.delenv("FACEGATE_SITE_ADMIN_PASSWORD")
    capsys.readouterr()
    assert main(["site", "init", "--data", str(tmp_path / "u"), "--generate-password"]) == 0
    generated = re.search(r"password \(shown once\): (\S+)", capsys.readouterr().out).group(1)
    site = open_site(tmp_path / "u")
    assert accounts.authenticate(site.store, "admin", generated).role == "admin"
    stored = site.store.one("SELECT pw_hash FROM accounts WHERE username='admin'")["pw_hash"]
    assert stored.startswith("$argon2id$") and generated not in stored
    site.close()
    assert main(["site", "serve", "--data", str(tmp_path / "nowhere")]) == 18
    assert "not a site folder" in capsys.readouterr().err


# -- enrolment, people pages, erasure -------------------------------------------------------------------
def test_enrol_search_rename_remove_with_trail(admin, site, lfw_images, capsys):
    paths = lfw_images["Al_Gore"][:4]
    r = enrol(admin, "Al Gore", paths, groups="lobby lab")
    assert r.status_code == 200, r.text
    assert "Enrolled" in r.text and "passed the quality gates" in r.text
    pid = person_id_of(admin, "Al Gore")
    used = site.store.one("SELECT COUNT(*) AS n FROM templates WHERE person_id=?", (pid,))["n"]
    assert 1 <= used <= len(paths)
    assert admin.get("/people", params={"q": "gore"}).text.count(f"/people/{pid}") == 1
    assert "Nobody matches" in admin.get("/people", params={"q": "zzz"}).text

    csrf = csrf_of(admin.get(f"/people/{pid}").text)
    assert admin.post(f"/people/{pid}/rename", data={"csrf": csrf, "name": "Albert Gore"}).status_code == 200
    assert "Albert Gore" in admin.get(f"/people/{pid}").text
    r = admin.post(f"/people/{pid}/access", data={"csrf": csrf, "valid_from": "2020-01-01", "valid_until": "2019-01-01",
                                                  "groups": ""})
    assert r.status_code == 422 and "ends before it starts" in r.text

    r = admin.post(f"/people/{pid}/remove", data={"csrf": csrf, "confirm": "on"})
    assert r.status_code == 200 and "Erasure receipt" in r.text
    receipt = re.search(r"Erasure receipt</dt><dd><code>([0-9a-f]{64})", r.text).group(1)
    assert site.store.one("SELECT COUNT(*) AS n FROM templates WHERE person_id=?", (pid,))["n"] == 0
    assert admin.get(f"/people/{pid}").status_code == 404
    trail = [e for e in site.trail.recent() if e.get("person") == pid]
    assert [e["event"] for e in reversed(trail)] == ["person-enrol", "person-rename", "person-erase"]
    assert trail[0]["receipt"] == receipt and all(e["actor"] == "admin" for e in trail)
    assert "Gore" not in site.trail.path.read_text()                     # ids in the trail, never names
    assert main(["audit", "verify", str(site.trail.path)]) == 0           # the door's verifier checks it
    assert "audit log OK" in capsys.readouterr().out


def test_a_photo_without_a_usable_face_is_shown_and_nobody_enrolled(admin, site, tmp_path):
    blank = tmp_path / "wall.png"
    import cv2
    cv2.imwrite(str(blank), np.full((240, 240, 3), 128, np.uint8))
    before = site.store.one("SELECT COUNT(*) AS n FROM people")["n"]
    r = admin.post("/people/new", data={"csrf": csrf_of(admin.get("/people/new").text), "name": "Nobody"},
                   files=[("photos", ("wall.png", blank.read_bytes(), "image/png")),
                          ("photos", ("junk.jpg", b"not an image", "image/jpeg"))])
    assert r.status_code == 422
    assert "no face found" in r.text and "not a readable image" in r.text and "nobody was enrolled" in r.text
    assert site.store.one("SELECT COUNT(*) AS n FROM people")["n"] == before


def test_templates_are_sealed_at_rest(admin, site, service, lfw_images):
    assert enrol(admin, "Abdullah Gul", lfw_images["Abdullah_Gul"][2:4]).status_code == 200
    pid = person_id_of(admin, "Abdullah Gul")
    g = people.gallery(site.store, site.sealer, service.binding)
    vector = g.templates[g.owners == g.person_order.index(pid)][0]
    site.store.execute("PRAGMA wal_checkpoint(FULL)")
    raw = (site.folder / "site.db").read_bytes()
    assert vector.astype(np.float32).tobytes()[:16] not in raw           # no plaintext template on disk
    # a sealed template moved onto another person's row does not open as theirs
    site.store.execute("INSERT INTO people (id, name, name_key, door_groups, created, updated) "
                       "VALUES ('feedfeedfeed', 'Mallory', 'mallory', '', 0, 0)")
    blob = site.store.one("SELECT vector FROM templates WHERE person_id=?", (pid,))["vector"]
    site.store.execute("INSERT INTO templates (person_id, model_sha256, vector, created) VALUES (?, ?, ?, 0)",
                       ("feedfeedfeed", service.binding.sha256, blob))
    with pytest.raises(SiteError, match="moved to another record"):
        people.gallery(site.store, site.sealer, service.binding)
    site.store.execute("DELETE FROM people WHERE id='feedfeedfeed'")


# -- the verification API -------------------------------------------------------------------------------
def token(site, scopes: list[str], door: str | None = None) -> dict:
    return {"Authorization": "Bearer " + accounts.create_token(site.store, "test", scopes, door_id=door)}


def test_identify_and_verify_by_embedding_and_by_image(admin, site, service, lfw_images, pipeline):
    paths = lfw_images["Adrien_Brody"]
    assert enrol(admin, "Adrien Brody", [paths[0], paths[2], paths[3]]).status_code == 200
    pid = person_id_of(admin, "Adrien Brody")
    client = TestClient(admin.app)
    trusted = token(site, ["verify", "verify:embedding"])
    from facegate.edge.images import load_rgb
    probe = service.pipeline().embed(load_rgb(paths[5])).vector
    r = client.post("/v1/identify", headers=trusted, json={"embedding": probe.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "accept" and r.json()["person"] == pid and r.json()["name"] == "Adrien Brody"
    stranger = service.pipeline().embed(load_rgb(lfw_images["Aaron_Peirsol"][0])).vector
    r = client.post("/v1/identify", headers=trusted, json={"embedding": stranger.tolist()})
    assert r.json()["decision"] == "reject" and r.json()["person"] is None
    r = client.post("/v1/verify", headers=trusted, json={"embedding": stranger.tolist(), "person": pid})
    assert r.json()["decision"] == "reject"
    image_only = token(site, ["verify"])
    r = client.post("/v1/verify", headers=image_only, data={"person": "Adrien Brody"},
                    files={"image": ("probe.jpg", paths[5].read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "accept" and r.json()["liveness"]["live"] is True
    # a phone replaying someone's face is refused before any matching (it learns nothing about the gallery)
    replay = PAD / "spoof" / "msu_attack_client002_android_SD_iphone_video_scene01.jpg"
    if replay.exists():
        r = client.post("/v1/identify", headers=image_only, files={"image": ("replay.jpg", replay.read_bytes(), "image/jpeg")})
        assert r.status_code == 403 and "presentation attack suspected" in r.json()["error"]
        assert "person" not in r.json()
    # an image-only client may not send embeddings (it could probe the matcher with made-up vectors)
    r = client.post("/v1/identify", headers=image_only, json={"embedding": probe.tolist()})
    assert r.status_code == 403 and "verify:embedding" in r.json()["error"]
    for bad, message in (([1.0, 2.0], "must have"), ([1e999] * service.binding.dim, "finite"),
                         ([[1.0]], "must have"), ("abc", "numbers")):
        r = client.post("/v1/identify", headers={**trusted, "content-type": "application/json"},
                        content=json.dumps({"embedding": bad}))
        assert r.status_code == 422 and message in r.json()["error"], (bad, r.text)
    r = client.post("/v1/identify", headers={**trusted, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json() == {"error": "the body is not valid JSON"}
    r = client.post("/v1/verify", headers=trusted, json={"embedding": probe.tolist(), "person": "Nobody Here"})
    assert r.status_code == 404 and "no person" in r.json()["error"]


def test_identify_batches_concurrent_probes(service, site):
    """Many threads at once: every answer is its own probe's (the batcher never mixes them up)."""
    from concurrent.futures import ThreadPoolExecutor
    g = people.gallery(site.store, site.sealer, service.binding)
    assert len(g.templates) >= 2
    probes = [(g.templates[i], g.person_order[g.owners[i]]) for i in range(len(g.templates))] * 8
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: service.identify(p[0]), probes))
    assert [a.person_id for a in answers] == [pid for _, pid in probes]


# -- security: each attack tried, each refused ----------------------------------------------------------
def test_login_lockout_and_unlock(app, site):
    accounts.create_account(site.store, "olga", PASSWORD, "operator")
    client = TestClient(app)
    for _ in range(accounts.MAX_FAILURES - 1):
        assert login(client, "olga", "wrong password!").status_code == 401
    r = login(client, "olga", "wrong password!")
    assert r.status_code == 423 and "locked" in r.text
    assert login(client, "olga", PASSWORD).status_code == 423            # the right password no longer helps
    unknown = login(client, "nobody", "whatever12345")
    assert unknown.status_code == 401 and "wrong username or password" in unknown.text
    olga = site.store.one("SELECT id FROM accounts WHERE username='olga'")["id"]
    admin = TestClient(app)
    login(admin)
    csrf = csrf_of(admin.get("/accounts").text)
    assert admin.post(f"/accounts/{olga}/unlock", data={"csrf": csrf}).status_code == 200
    assert login(client, "olga", PASSWORD).status_code == 303
    assert any(e["event"] == "account-unlock" and e["account"] == olga for e in site.trail.recent())


def test_login_rate_limit_per_address(site, service):
    client = TestClient(create_app(site, service, Settings(login_per_minute=3)))
    codes = [login(client, "admin", "wrong password!").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert login(client).status_code == 429                               # even the right password waits


def test_session_cookie_flags_and_tls(app, site, service):
    r = login(TestClient(app))
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Secure" not in cookie
    tls_app = create_app(site, service, Settings(tls=True, login_per_minute=1000))
    r = login(TestClient(tls_app, base_url="https://testserver"))
    assert "Secure" in r.headers["set-cookie"]
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_csrf_missing_or_foreign_token_is_refused(admin, site, lfw_images):
    r = admin.post("/people/new", data={"name": "Forged"}, files=photo_files(lfw_images["Al_Gore"][:1]))
    assert r.status_code == 403 and "did not come from this site" in r.text
    r = admin.post("/accounts", data={"csrf": "x" * 43, "username": "evil", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 403
    assert site.store.one("SELECT 1 AS x FROM accounts WHERE username='evil'") is None
    assert site.store.one("SELECT 1 AS x FROM people WHERE name='Forged'") is None
    r = TestClient(admin.app).post("/login", data={"username": "admin", "password": PASSWORD, "csrf": "guess"})
    assert r.status_code == 403


def test_roles_are_checked_on_every_route(app, site, lfw_images):
    accounts.create_account(site.store, "vera", PASSWORD, "viewer")
    viewer = TestClient(app)
    assert login(viewer, "vera").status_code == 303
    assert viewer.get("/people").status_code == 200 and "Enrol a person" not in viewer.get("/people").text
    csrf = csrf_of(viewer.get("/people").text)
    r = viewer.post("/people/new", data={"csrf": csrf, "name": "Sneaky"}, files=photo_files(lfw_images["Al_Gore"][:1]))
    assert r.status_code == 403 and "viewer" in r.text
    for path in ("/accounts", "/trail", "/people/new"):
        assert viewer.get(path).status_code == 403
    assert viewer.post("/doors", data={"csrf": csrf, "name": "back door"}).status_code == 403
    anonymous = TestClient(app)
    for path in ("/people", "/events", "/events.csv", "/accounts", "/doors"):
        r = anonymous.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    # API tokens: no token, a verify token on the people list, a door token on verify
    assert anonymous.get("/v1/people").status_code == 401
    assert anonymous.get("/v1/people", headers=token(site, ["verify"])).status_code == 403
    door_id = events.add_door(site.store, "side door")
    door = token(site, ["door"], door_id)
    assert anonymous.post("/v1/identify", headers=door, json={"embedding": [0.1] * 512}).status_code == 403
    assert anonymous.get("/v1/people", headers=door).status_code == 403
    assert anonymous.get("/v1/people", headers=token(site, ["people:read"])).status_code == 200
    # a session cookie is not an API token, and an API token opens no page
    assert anonymous.get("/people", headers=token(site, ["people:read"]), follow_redirects=False).status_code == 303
    revoked = accounts.create_token(site.store, "old", ["people:read"])
    accounts.revoke_token(site.store, site.store.one("SELECT id FROM api_tokens WHERE token_hash=?",
                                                     (accounts.digest(revoked),))["id"])
    assert anonymous.get("/v1/people", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401


def test_uploads_are_bounded(admin, site, service):
    csrf = csrf_of(admin.get("/people/new").text)
    # a PNG header claiming 60000 x 60000 pixels (a decompression bomb) is refused before decoding
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    r = admin.post("/people/new", data={"csrf": csrf, "name": "Bomb"}, files=[("photos", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 422 and "over the 40 MP limit" in r.text
    small = TestClient(create_app(site, service, Settings(max_body_mb=1, max_photo_mb=0.5, login_per_minute=1000)))
    login(small)
    csrf = csrf_of(small.get("/people/new").text)
    r = small.post("/people/new", data={"csrf": csrf, "name": "Big"}, files=[("photos", ("big.jpg", b"\xff" * 800_000,
                                                                                         "image/jpeg"))])
    assert r.status_code == 413 and "limit" in r.text
    r = small.post("/people/new", data={"csrf": csrf, "name": "Huge"},
                   files=[("photos", ("huge.jpg", b"\xff" * 2_000_000, "image/jpeg"))])
    assert r.status_code == 413 and r.json()["error"].startswith("request body over")
    assert site.store.one("SELECT 1 AS x FROM people WHERE name IN ('Big', 'Huge', 'Bomb')") is None


def test_security_headers_docs_and_no_tracebacks(admin, site):
    r = admin.get("/people")
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text
    docs = admin.get("/docs")
    assert docs.status_code == 200 and "/v1/identify" in docs.text and "<script" not in docs.text
    spec = admin.get("/openapi.json").json()
    assert {"/v1/verify", "/v1/identify", "/v1/door/events"} <= set(spec["paths"])
    assert not any(p.startswith("/people") for p in spec["paths"])
    r = admin.get("/people/not-a-person")
    assert r.status_code == 404 and "Traceback" not in r.text
    r = admin.post("/v1/door/events", headers=token(site, ["door"], events.add_door(site.store, "garage")),
                   content=b"\x00\xff")
    assert r.status_code == 400 and set(r.json()) == {"error"}


# -- doors and events -----------------------------------------------------------------------------------
def test_door_events_are_deduplicated_filtered_and_exported(admin, site):
    csrf = csrf_of(admin.get("/doors").text)
    r = admin.post("/doors", data={"csrf": csrf, "name": "Front door", "door_group": "lobby"})
    assert r.status_code == 200 and "shown only now" in r.text
    registration = re.search(r"--token (fgr_[A-Za-z0-9_-]+)", r.text).group(1)
    door_id = re.search(r"Door <code>(door-[0-9a-f]+)</code> added", r.text).group(1)
    client = TestClient(admin.app)
    creds = client.post("/v1/door/register", json={"token": registration}).json()
    assert creds["door_id"] == door_id and creds["door_group"] == "lobby" and creds["api_token"].startswith("fgt_")
    replay = client.post("/v1/door/register", json={"token": registration})
    assert replay.status_code == 401 and "already used" in replay.json()["error"]
    head = {"Authorization": f"Bearer {creds['api_token']}"}
    batch = [{"seq": 1, "time": "2026-12-01T08:00:00.000+00:00", "event": "decision", "decision": "accept",
              "person": "abc123abc123", "score": 0.81},
             {"seq": 2, "time": "2026-12-01T08:05:00.000+00:00", "event": "decision", "decision": "reject",
              "score": 0.12, "reason": "=HYPERLINK(\"http://evil\")"}]
    assert client.post("/v1/door/events", headers=head, json={"events": batch}).json() == {"accepted": 2, "duplicates": 0}
    again = client.post("/v1/door/events", headers=head, json={"events": batch + [{**batch[0], "seq": 3}]})
    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert client.post("/v1/door/events", headers=head, json={"events": [{"seq": "x"}]}).status_code == 422
    assert client.post("/v1/door/heartbeat", headers=head, json={"gallery_version": 7, "model": "student-int8",
                                                                  "liveness_mode": "passive"}).json() == {"ok": True}
    doors_page = admin.get("/doors").text
    assert "student-int8" in doors_page and "passive" in doors_page
    page = admin.get("/events", params={"door": door_id, "decision": "reject"}).text
    assert page.count("<td>decision</td>") == 1 and "0.120" in page
    assert admin.get("/events", params={"door": door_id, "since": "2026-12-01T08:04"}).text.count("<td>decision</td>") == 1
    assert admin.get("/events", params={"since": "yesterday"}).status_code == 422
    csv_text = admin.get("/events.csv", params={"door": door_id}).text
    assert csv_text.splitlines()[0].startswith("time,door_id") and len(csv_text.splitlines()) == 4
    rows = site.store.query("SELECT detail FROM events WHERE door_id=? AND seq=2", (door_id,))
    assert "HYPERLINK" in rows[0]["detail"]
    assert events._cell("=1+1") == "'=1+1"


# -- PostgreSQL -------------------------------------------------------------------------------------------
def test_postgresql_store_runs_the_same_site(tmp_path, service):
    with postgresql() as url:
        site = init_site(tmp_path / "pgsite", "admin", PASSWORD, db_url=url)
        assert site.store.dialect == "postgresql" and site.store.schema_version() == 3
        assert "facegate@127.0.0.1" in (site.folder / "site.json").read_text()
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(3, service.binding.dim)).astype(np.float32)
        results = [PhotoResult(f"{i}.jpg", True, [], None, v, b"jpeg") for i, v in enumerate(vectors)]
        pid = people.enrol(site.store, site.sealer, service.binding, "Pat Postgres", results[:2])
        with pytest.raises(SiteRequestError, match="already enrolled"):
            people.enrol(site.store, site.sealer, service.binding, "pat  postgres", results[2:])
        g = people.gallery(site.store, site.sealer, service.binding)
        assert g.person_order == [pid] and np.allclose(np.linalg.norm(g.templates, axis=1), 1)
        door = events.add_door(site.store, "pg door")
        entry = {"seq": 1, "time": "2026-12-01T08:00:00+00:00", "event": "decision", "decision": "accept"}
        assert events.ingest(site.store, door, [entry, entry]) == {"accepted": 1, "duplicates": 1}
        assert people.erase(site.store, pid, "admin")["templates"] == 2
        site.close()
        reopened = open_site(tmp_path / "pgsite", url)                    # the schema is kept, not re-made
        app = create_app(reopened, service, Settings(login_per_minute=1000))
        client = TestClient(app)
        assert login(client).status_code == 303
        assert "Nobody is enrolled yet" in client.get("/people").text
        assert len(events.search(reopened.store, door=door)) == 1
        reopened.close()
        with pytest.raises(SiteError, match="wrong --db"):
            open_site(tmp_path / "pgsite", f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(SiteError, match="cannot connect"):
        SiteStore(url)


def test_sqlite_file_is_not_readable_as_a_site_by_accident(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SiteError):
        SiteStore(str(bad)).migrate()
    assert sqlite3.sqlite_version_info >= (3, 35)                       # RETURNING
