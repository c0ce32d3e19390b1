"""The fleet against a real mosquitto (started here on a loopback port with the site's generated password
file and ACL) and the real site server (uvicorn on a loopback port): registration, access rules,
exactly-once events through broker and site outages, signed snapshots and the attacks on them."""
from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the site server needs the `site` extra")
mqtt = pytest.importorskip("paho.mqtt.client", reason="the fleet needs paho-mqtt (the `site` extra)")
import httpx2 as httpx  # noqa: E402
import uvicorn  # noqa: E402
from servers import free_port  # noqa: E402

from facegate.edge.door.audit import AuditLog  # noqa: E402
from facegate.edge.fleet import provisioning, snapshots, topics  # noqa: E402
from facegate.edge.fleet.agent import DoorAgent, FleetCredentials  # noqa: E402
from facegate.edge.fleet.broker import Mosquitto, mosquitto_binary, write_files  # noqa: E402
from facegate.edge.fleet.ingest import SiteFleet  # noqa: E402
from facegate.edge.fleet.outbox import Outbox  # noqa: E402
from facegate.edge.fleet.registration import register_door  # noqa: E402
from facegate.edge.gallery import GalleryStore, KeySource  # noqa: E402
from facegate.edge.site import events, people  # noqa: E402
from facegate.edge.site.folder import init_site  # noqa: E402
from facegate.edge.site.people import PhotoResult  # noqa: E402
from facegate.edge.site.server import make_service  # noqa: E402
from facegate.edge.site.web import Settings, create_app  # noqa: E402

if mosquitto_binary() is None:
    pytest.skip("mosquitto is not installed (Debian package `mosquitto`; .ci/run installs it)", allow_module_level=True)


def wait_for(condition, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s: {condition}")


class Web:
    """The site's FastAPI app under uvicorn in a thread, on a loopback port."""

    def __init__(self, app, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> "Web":
        self.thread.start()
        wait_for(lambda: self.server.started)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SiteUnderTest:
    def __init__(self, root: Path) -> None:
        self.site = init_site(root / "site", "admin", "correct horse battery")
        self.service = make_service(self.site, liveness=False)
        self.mqtt_port = free_port()
        self.settings = Settings(broker_port=self.mqtt_port, login_per_minute=1000)
        users, acl = provisioning.broker_accounts(self.site.store, self.site)
        self.broker = Mosquitto(write_files(root / "site" / "broker", self.mqtt_port, users, acl), self.mqtt_port).start()
        self.fleet = None
        self.web = None
        self.web_port = free_port()              # the site's URL stays the same across restarts
        self.start_site()

    def start_site(self) -> None:
        self.fleet = SiteFleet(self.site, self.service.binding, "127.0.0.1", self.mqtt_port, self.broker).start()
        assert self.fleet.wait_connected()
        self.web = Web(create_app(self.site, self.service, self.settings, fleet=self.fleet), self.web_port).start()

    def stop_site(self) -> None:
        self.web.stop()
        self.fleet.stop()

    def add_door(self, name: str, group: str = "") -> tuple[str, str]:
        door = events.add_door(self.site.store, name, group)
        return door, provisioning.create_registration(self.site.store, door)

    def close(self) -> None:
        self.stop_site()
        self.broker.stop()
        self.site.close()


@pytest.fixture()
def site(tmp_path):
    s = SiteUnderTest(tmp_path)
    yield s
    s.close()


def client(username: str, password: str, port: int, client_id: str | None = None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{username}-{time.monotonic_ns()}")
    c.username_pw_set(username, password)
    outcome = {}
    c.on_connect = lambda cl, u, f, reason, p=None: outcome.setdefault("reason", reason)
    c.connect("127.0.0.1", port)
    c.loop_start()
    wait_for(lambda: "reason" in outcome, 10)
    return c, outcome["reason"]


def door_agent(site: SiteUnderTest, creds: FleetCredentials, root: Path, **kw) -> tuple[DoorAgent, AuditLog]:
    audit = AuditLog(root / "audit.jsonl", door_id=creds.door_id)
    agent = DoorAgent(creds, root / "audit.jsonl", root / "gallery.fgg", root / "state", site.service.binding,
                      heartbeat_s=0.5, resend_s=1.0, **kw).start()
    assert agent.wait_connected()
    return agent, audit


# -- registration and access rules -------------------------------------------------------------------------------
def test_registration_is_one_time_and_revocation_is_immediate(site, tmp_path):
    door, token = site.add_door("front", "lobby")
    creds = register_door(site.web.url, token, tmp_path / "door")
    assert creds.door_id == door and creds.broker_username == door and creds.door_group == "lobby"
    assert (tmp_path / "door" / "fleet.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "door" / "gallery.key").read_bytes() == site.site.gallery_key
    with pytest.raises(Exception, match="already used"):
        register_door(site.web.url, token, tmp_path / "again")
    connected, reason = client(creds.broker_username, creds.broker_password, site.mqtt_port,
                               client_id=creds.door_id)
    assert not reason.is_failure
    connected.reconnect_delay_set(0.1, 0.5)
    head = {"Authorization": f"Bearer {creds.api_token}"}
    assert httpx.post(site.web.url + "/v1/door/heartbeat", headers=head, json={}).status_code == 200
    provisioning.revoke(site.site.store, door)
    site.fleet.sync_broker(revoked=True)
    assert httpx.post(site.web.url + "/v1/door/heartbeat", headers=head, json={}).status_code == 401
    time.sleep(2.0)                                           # the open session ended; reconnecting is refused
    assert not connected.is_connected()
    connected.loop_stop()
    _, reason = client(creds.broker_username, creds.broker_password, site.mqtt_port)
    assert reason.is_failure                                  # "not authorised"
    assert site.fleet.wait_connected()                        # the site itself is back on the broker


def test_a_door_publishes_and_reads_only_its_own_topics(site, tmp_path):
    creds_a = register_door(site.web.url, site.add_door("a", "lobby")[1], tmp_path / "a")
    creds_b = register_door(site.web.url, site.add_door("b", "lab")[1], tmp_path / "b")
    sid = site.site.site_id
    watcher, _ = client(provisioning.SITE_USER, site.site.broker_password, site.mqtt_port)
    seen: list[str] = []
    payloads: list[bytes] = []
    watcher.on_message = lambda c, u, m: (seen.append(m.topic), payloads.append(m.payload))
    watcher.subscribe(f"facegate/{sid}/#", qos=1)
    a, reason = client(creds_a.broker_username, creds_a.broker_password, site.mqtt_port)
    assert not reason.is_failure
    a_seen: list[str] = []
    a.on_message = lambda c, u, m: a_seen.append(m.topic)
    a.subscribe([(topics.door_topic(sid, creds_b.door_id, "commands"), 1), (topics.gallery_topic(sid, "lab"), 1),
                 (topics.door_topic(sid, creds_a.door_id, "commands"), 1)])
    time.sleep(0.3)
    a.publish(topics.door_topic(sid, creds_b.door_id, "events"), b'{"forged": true}', qos=1).wait_for_publish(5)
    a.publish(topics.gallery_topic(sid, "lobby"), b'{"forged": true}', qos=1).wait_for_publish(5)
    a.publish(topics.door_topic(sid, creds_a.door_id, "heartbeat"), b"{}", qos=1).wait_for_publish(5)
    watcher.publish(topics.door_topic(sid, creds_b.door_id, "commands"), b"{}", qos=1)
    watcher.publish(topics.gallery_topic(sid, "lab"), b"{}", qos=1)
    watcher.publish(topics.door_topic(sid, creds_a.door_id, "commands"), b"{}", qos=1)
    wait_for(lambda: topics.door_topic(sid, creds_a.door_id, "heartbeat") in seen)
    wait_for(lambda: a_seen)
    time.sleep(0.5)
    assert topics.door_topic(sid, creds_b.door_id, "events") not in seen      # refused by the broker
    assert not any(b"forged" in p for p in payloads)                          # nor its fake gallery announcement
    assert a_seen == [topics.door_topic(sid, creds_a.door_id, "commands")]    # not b's commands, not lab's gallery
    for c in (a, watcher):
        c.disconnect()
        c.loop_stop()


# -- events: exactly once in the site's view ------------------------------------------------------------------------
def test_events_arrive_exactly_once_through_broker_and_site_outages(site, tmp_path):
    creds = register_door(site.web.url, site.add_door("front")[1], tmp_path / "door")
    agent, audit = door_agent(site, creds, tmp_path / "door")
    try:
        def decide(n):
            for _ in range(n):
                audit.append("decision", decision="accept", person="abc123abc123", score=0.8)
        decide(40)
        wait_for(lambda: events.acked_seq(site.site.store, creds.door_id) == audit._seq and agent.outbox.acked == audit._seq)
        site.broker.stop()                       # the broker goes away; the door keeps deciding
        decide(30)
        site.stop_site()                         # then the site server too
        decide(20)
        site.broker.start()
        decide(10)
        site.start_site()
        wait_for(lambda: agent.outbox.acked == audit._seq, timeout=30)
    finally:
        agent.stop()
    rows = site.site.store.query("SELECT seq, mac, prev FROM events WHERE door_id=? ORDER BY seq", (creds.door_id,))
    assert [r["seq"] for r in rows] == list(range(1, audit._seq + 1))        # 0 lost, 0 duplicates
    assert all(rows[i]["mac"] == rows[i + 1]["prev"] for i in range(len(rows) - 1))
    assert events.alarms(site.site.store, creds.door_id) == []
    door = site.site.store.one("SELECT last_heartbeat, model FROM doors WHERE id=?", (creds.door_id,))
    assert door["model"] == site.service.binding.name and door["last_heartbeat"] is not None


def test_a_gap_and_a_forged_entry_are_alarms(site, tmp_path):
    door, _ = site.add_door("side")
    log = AuditLog(tmp_path / "a.jsonl", door_id=door)
    for _ in range(4):
        log.append("decision", decision="reject", score=0.1)
    entries = Outbox(tmp_path / "a.jsonl", tmp_path / "state.json").pending()     # genesis (seq 1) + 4 decisions
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert events.ingest(site.site.store, door, [entries[0], entries[1], entries[3]])["accepted"] == 3
    assert [(a["kind"], a["seq"]) for a in events.alarms(site.site.store, door)] == [("gap", 3)]
    forged = {**entries[2], "prev": "0" * 64}                  # entry 3 that does not follow entry 2
    events.ingest(site.site.store, door, [forged])
    kinds = sorted(a["kind"] for a in events.alarms(site.site.store, door))
    assert kinds == ["chain-broken"] and events.acked_seq(site.site.store, door) == 4


def test_a_broken_link_inside_one_batch_is_one_alarm(site, tmp_path):
    door, _ = site.add_door("back")
    log = AuditLog(tmp_path / "b.jsonl", door_id=door)
    for _ in range(3):
        log.append("decision", decision="reject", score=0.1)
    entries = Outbox(tmp_path / "b.jsonl", tmp_path / "state.json").pending()
    entries[2] = {**entries[2], "prev": "0" * 64}                  # entry 3 does not follow entry 2
    assert events.ingest(site.site.store, door, entries)["accepted"] == 4
    alarms = events.alarms(site.site.store, door)
    assert [(a["kind"], a["seq"]) for a in alarms] == [("chain-broken", 3)]


# -- gallery snapshots ----------------------------------------------------------------------------------------------
def enrol_random(site: SiteUnderTest, name: str, groups: str = "", seed: int = 0) -> tuple[str, np.ndarray]:
    v = np.random.default_rng(seed).normal(size=(2, site.service.binding.dim)).astype(np.float32)
    pid = people.enrol(site.site.store, site.site.sealer, site.service.binding, name,
                       [PhotoResult(f"{i}.jpg", True, [], None, x, b"") for i, x in enumerate(v)], groups=groups)
    return pid, v


def test_enrolment_and_erasure_reach_the_door(site, tmp_path):
    creds = register_door(site.web.url, site.add_door("front", "lobby")[1], tmp_path / "door")
    agent, _ = door_agent(site, creds, tmp_path / "door")
    key = KeySource.from_keyfile(creds.gallery_key_file)
    try:
        ada, _ = enrol_random(site, "Ada", "lobby", 1)
        lab_only, _ = enrol_random(site, "Bob", "lab", 2)
        everyone, _ = enrol_random(site, "Cy", "", 3)
        wait_for(lambda: agent.gallery_version >= 1 and
                 set(GalleryStore(tmp_path / "door" / "gallery.fgg", key).load().people) == {ada, everyone})
        wait_for(lambda: site.site.store.one("SELECT gallery_version FROM doors WHERE id=?",
                                             (creds.door_id,))["gallery_version"] == agent.gallery_version)
        before = agent.gallery_version
        people.erase(site.site.store, ada, "admin")
        wait_for(lambda: agent.gallery_version > before)
        held = GalleryStore(tmp_path / "door" / "gallery.fgg", key).load()
        assert set(held.people) == {everyone} and lab_only not in held.people
        # the site shows the erasure confirmed by the door once it runs a snapshot made after it
        receipt = wait_for(lambda: next((e for e in events.erasure_confirmations(site.site.store)
                                         if e["person_id"] == ada and not e["pending"]), None))
        assert receipt["confirmed"] == ["front"]
    finally:
        agent.stop()


def test_forged_stale_and_foreign_snapshots_are_refused(site, tmp_path):
    creds = register_door(site.web.url, site.add_door("front")[1], tmp_path / "door")
    enrol_random(site, "Ada", "", 4)
    site.fleet.publish_snapshots()
    row = site.site.store.one("SELECT announcement, data FROM snapshots ORDER BY version DESC LIMIT 1")
    announcement, blob = json.loads(row["announcement"]), row["data"]
    agent = DoorAgent(creds, tmp_path / "door" / "audit.jsonl", tmp_path / "door" / "gallery.fgg",
                      tmp_path / "door" / "state", site.service.binding)
    gallery_file = tmp_path / "door" / "gallery.fgg"
    gallery_file.write_bytes(b"the gallery in use")

    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    other_key = Ed25519PrivateKey.generate()
    forged = {**announcement, "signature": base64.b64encode(other_key.sign(b"x")).decode()}
    cases = {
        "unsigned": {k: v for k, v in announcement.items() if k != "signature"},
        "forged signature": forged,
        "edited version": {**announcement, "version": announcement["version"] + 5},
        "another site": {**announcement, "site": "0123456789abcdef"},
    }
    for name, bad in cases.items():
        assert agent.apply_announcement(bad) is False, name
    assert gallery_file.read_bytes() == b"the gallery in use"
    assert len(agent.refused) == len(cases)
    assert agent.apply_announcement(announcement) is True and agent.gallery_version == announcement["version"]
    in_use = gallery_file.read_bytes()
    assert agent.apply_announcement(announcement) is False                       # the same version again: no rollback
    manifest = snapshots.verify_announcement(announcement, creds.site_public_key, creds.site_id, "_all", 0)
    with pytest.raises(snapshots.SnapshotRefused, match="does not match its signed digest"):
        snapshots.check_file(blob[:-1] + bytes([blob[-1] ^ 1]), manifest, site.site.gallery_key, site.service.binding)
    with pytest.raises(snapshots.SnapshotRefused, match="not newer"):
        snapshots.verify_announcement(announcement, creds.site_public_key, creds.site_id, "_all", manifest.version)
    assert gallery_file.read_bytes() == in_use


# -- remote commands --------------------------------------------------------------------------------------------------
def test_command_signature_expiry_address_and_replay(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from facegate.edge.fleet import commands
    from facegate.edge.fleet.snapshots import public_key_b64
    key = Ed25519PrivateKey.generate()
    pub = public_key_b64(key)
    t = 1_000_000.0
    good = commands.make(key, "site1", "door-a", "unlock", "olga", now=t)
    seen: dict = {}
    assert commands.verify(good, pub, "site1", "door-a", seen, now=t + 1)["action"] == "unlock"
    cases = {
        "replayed": (good, t + 2),
        "expired": (commands.make(key, "site1", "door-a", "unlock", "olga", now=t - 120), t),
        "other door": (commands.make(key, "site1", "door-b", "unlock", "olga", now=t), t),
        "other site": (commands.make(key, "site2", "door-a", "unlock", "olga", now=t), t),
        "forged": (commands.make(Ed25519PrivateKey.generate(), "site1", "door-a", "unlock", "x", now=t), t),
        "edited": ({**commands.make(key, "site1", "door-a", "release", "olga", now=t), "action": "unlock"}, t),
        "future": (commands.make(key, "site1", "door-a", "unlock", "olga", now=t + 3600), t),
    }
    for name, (command, when) in cases.items():
        with pytest.raises(commands.CommandRefused):
            commands.verify(command, pub, "site1", "door-a", seen, now=when)
        assert name


def test_site_commands_reach_the_door_loop_signed_once_and_audited(site, tmp_path, pipeline):
    from facegate.edge.door.policy import DoorEvent
    from facegate.edge.door.relay import DoorLock, make_relay
    from facegate.edge.door.unit import ChallengeSettings, DoorApp, DoorSettings, RemoteCommands
    from facegate.edge.gallery import Matcher
    creds = register_door(site.web.url, site.add_door("front")[1], tmp_path / "door")
    agent, _ = door_agent(site, creds, tmp_path / "door")
    try:
        relay = make_relay("mock", 17, True, None)
        lock = DoorLock(relay, 2.0)
        remote = RemoteCommands(tmp_path / "door" / "state", creds.site_public_key, creds.site_id, creds.door_id,
                                ChallengeSettings(0.25, 8.0))
        gallery = people.gallery(site.site.store, site.site.sealer, site.service.binding)
        clock = {"t": 0.0}
        app = DoorApp(DoorSettings(), pipeline, Matcher(gallery, 0.5, 0.4), lock,
                      AuditLog(tmp_path / "door" / "audit.jsonl", door_id=creds.door_id), clock=lambda: clock["t"],
                      remote=remote)

        def deliver(action, mode=None):
            command = site.fleet.send_command(creds.door_id, action, "olga", mode)
            wait_for(lambda: remote.spool.take())
            clock["t"] += 2
            return command, app.apply_remote_commands(clock["t"])

        command, applied = deliver("unlock")
        assert applied == 1 and relay._locked is False
        lock.tick(clock["t"] + 3)
        assert relay._locked is True
        remote.spool.drop(json.dumps(command).encode())             # the same message again: a replay
        clock["t"] += 2
        assert app.apply_remote_commands(clock["t"]) == 0 and relay._locked is True
        assert deliver("lockdown")[1] == 1 and app.lockdown and remote.lockdown_on()
        assert app._handle(DoorEvent("accept", "abc123abc123", 0.9), clock["t"]) is False and relay._locked
        assert deliver("liveness", "challenge")[1] == 1 and app.challenge is not None
        # the heartbeat reports what the door runs now, not its door.toml
        wait_for(lambda: site.site.store.one("SELECT liveness_mode, status FROM doors WHERE id=?", (creds.door_id,))
                 == {"liveness_mode": "challenge", "status": "lockdown"})
        assert deliver("release")[1] == 1 and not app.lockdown and not remote.lockdown_on()
        log_entries = [json.loads(x) for x in (tmp_path / "door" / "audit.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in log_entries]
        assert kinds.count("remote_unlock") == 1 and "command_refused" in kinds and "lockdown_refused" in kinds
        refused = next(e for e in log_entries if e["event"] == "command_refused")
        assert "replayed" in refused["reason"]
        unlock = next(e for e in log_entries if e["event"] == "remote_unlock")
        assert unlock["command"] == command["id"] and unlock["actor"] == "olga"
        # and the door's entries reach the site, where the unlock is visible beside the admin's command
        wait_for(lambda: any(e["event"] == "remote_unlock" for e in events.search(site.site.store, door=creds.door_id)))
    finally:
        agent.stop()


def test_web_admin_commands_and_revocation_are_role_checked(site, tmp_path):
    import re

    from fastapi.testclient import TestClient
    from test_site import csrf_of, login

    from facegate.edge.site import accounts
    creds = register_door(site.web.url, site.add_door("front")[1], tmp_path / "door")
    agent, _ = door_agent(site, creds, tmp_path / "door")
    try:
        app = site.web.server.config.app
        accounts.create_account(site.site.store, "vera", "correct horse battery", "viewer")
        accounts.create_account(site.site.store, "olga", "correct horse battery", "operator")
        viewer, operator, admin = TestClient(app), TestClient(app), TestClient(app)
        login(viewer, "vera", "correct horse battery")
        login(operator, "olga", "correct horse battery")
        login(admin, "admin", "correct horse battery")
        url = f"/doors/{creds.door_id}/command"
        assert viewer.post(url, data={"csrf": csrf_of(viewer.get("/doors").text), "action": "unlock"}).status_code == 403
        page = operator.get("/doors").text
        assert "Revoke" not in page and "unlock now" in page
        assert operator.post(url, data={"csrf": csrf_of(page), "action": "unlock"}).status_code == 200
        spool = tmp_path / "door" / "state" / "commands"
        wait_for(lambda: spool.exists() and any(spool.iterdir()))
        assert operator.post(f"/doors/{creds.door_id}/revoke", data={"csrf": csrf_of(page)}).status_code == 403
        trail = [e for e in site.site.trail.recent() if e["event"] == "door-command"]
        assert trail and trail[0]["actor"] == "olga" and trail[0]["action"] == "unlock"
        page = admin.get("/doors").text
        assert admin.post(f"/doors/{creds.door_id}/revoke", data={"csrf": csrf_of(page)}).status_code == 200
        assert re.search(r"<td>revoked</td>", admin.get("/doors").text)
        assert admin.post(url, data={"csrf": csrf_of(page), "action": "unlock"}).status_code == 404
    finally:
        agent.stop()


def make_ca_and_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away certificate authority and a server certificate for 127.0.0.1 (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "facegate test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    folder.mkdir(parents=True, exist_ok=True)
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_the_broker_speaks_tls_when_given_a_certificate(tmp_path):
    """Doors and site over MQTT with TLS: events flow; a client without TLS, or one that does not trust the
    site's authority, gets nowhere."""
    ca, cert, key = make_ca_and_cert(tmp_path / "tls")
    site = init_site(tmp_path / "site", "admin", "correct horse battery")
    service = make_service(site, liveness=False)
    door = events.add_door(site.store, "front")
    creds = provisioning.register(site.store, site, provisioning.create_registration(site.store, door),
                                  "http://127.0.0.1:1", "127.0.0.1", free_port())
    (tmp_path / "door").mkdir()
    (tmp_path / "door" / "gallery.key").write_bytes(site.gallery_key)
    creds = FleetCredentials(**{k: v for k, v in creds.items() if k != "gallery_key"},
                             gallery_key_file=str(tmp_path / "door" / "gallery.key"), ca_file=str(ca))
    users, acl = provisioning.broker_accounts(site.store, site)
    broker = Mosquitto(write_files(tmp_path / "site" / "broker", creds.broker_port, users, acl, tls_cert=cert, tls_key=key),
                       creds.broker_port, tls_cert=cert, tls_key=key).start()
    fleet = SiteFleet(site, service.binding, "127.0.0.1", creds.broker_port, broker, ca_file=str(ca)).start()
    agent = None
    try:
        assert fleet.wait_connected()
        audit = AuditLog(tmp_path / "door" / "audit.jsonl", door_id=door)
        agent = DoorAgent(creds, tmp_path / "door" / "audit.jsonl", tmp_path / "door" / "gallery.fgg",
                          tmp_path / "door" / "state", service.binding, resend_s=1.0).start()
        assert agent.wait_connected()
        for _ in range(5):
            audit.append("decision", decision="reject", score=0.1)
        wait_for(lambda: events.acked_seq(site.store, door) == 6 and agent.outbox.acked == 6)
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        plain.username_pw_set(creds.broker_username, creds.broker_password)
        plain.connect("127.0.0.1", creds.broker_port, keepalive=5)   # plain MQTT to the TLS listener
        plain.loop_start()
        time.sleep(1.5)
        assert not plain.is_connected()                            # no CONNACK ever comes
        plain.loop_stop()
        stranger = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        stranger.tls_set()                                        # the system's authorities, not the site's
        with pytest.raises(ssl.SSLError):
            stranger.connect("127.0.0.1", creds.broker_port, keepalive=5)
    finally:
        if agent is not None:
            agent.stop()
        fleet.stop()
        broker.stop()
        site.close()


def test_model_rollout_moves_the_door_with_its_gallery(site, tmp_path, lfw_images, pipeline):
    """`site model` re-embeds from sealed crops; the door installs the signed bundle, takes the new model's
    snapshot, and its loop swaps embedder and gallery together; the person is still recognised."""
    from facegate.edge.door.relay import DoorLock, make_relay
    from facegate.edge.door.unit import ChallengeSettings, DoorApp, DoorSettings, RemoteCommands
    from facegate.edge.fleet.models import prepare_rollout
    from facegate.edge.gallery import Matcher
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import MODELS_DIR, get_embedder
    target = MODELS_DIR / "facenet-student" / "facenet-student_int8.tflite"
    creds = register_door(site.web.url, site.add_door("front")[1], tmp_path / "door")
    photos = [(p.name, p.read_bytes()) for p in lfw_images["Aaron_Peirsol"][:2]]
    pid = people.enrol(site.site.store, site.site.sealer, site.service.binding, "Aaron",
                       people.assess_photos(site.service.pipeline(), photos, check_liveness=False))
    agent, audit = door_agent(site, creds, tmp_path / "door")
    try:
        store = GalleryStore(tmp_path / "door" / "gallery.fgg", KeySource.from_keyfile(creds.gallery_key_file))
        wait_for(lambda: store.exists() and pid in store.load().people)
        remote = RemoteCommands(tmp_path / "door" / "state", creds.site_public_key, creds.site_id, creds.door_id,
                                ChallengeSettings(0.25, 8.0))
        app = DoorApp(DoorSettings(), pipeline, Matcher(store.load(), 0.5, 0.4), DoorLock(make_relay("mock", 17, True, None)),
                      audit, remote=remote, gallery_store=store)
        manifest = prepare_rollout(site.site, str(target), progress=lambda m: None)
        new = get_embedder(target)
        assert manifest["model"]["sha256"] == new.card.sha256 != pipeline.embedder.card.sha256
        rows = site.site.store.query("SELECT COUNT(*) AS n FROM templates WHERE model_sha256=?", (new.card.sha256,))
        assert rows[0]["n"] == 2
        wait_for(lambda: agent.binding.sha256 == new.card.sha256, 30)             # bundle installed, snapshot taken
        assert (tmp_path / "door" / "state" / "models" / new.card.sha256 / target.name).exists()
        assert app.reload_gallery_if_changed(100.0) is True
        assert app.pipeline.embedder.card.sha256 == new.card.sha256
        assert app.matcher.gallery.binding.sha256 == new.card.sha256
        probe = app.pipeline.embed(load_rgb(lfw_images["Aaron_Peirsol"][2])).vector   # a photo never enrolled
        assert app.matcher.identify(probe).person_id == pid                        # still recognised, new model
        assert '"model_switch"' in audit.path.read_text()
        wait_for(lambda: site.site.store.one("SELECT model FROM doors WHERE id=?", (creds.door_id,))["model"] == new.card.name)
    finally:
        agent.stop()


def test_a_gallery_for_a_model_that_is_not_installed_is_not_used(site, tmp_path, pipeline):
    """A gallery of another model without its installed bundle: the door keeps its gallery and model."""
    from facegate.edge.door.relay import DoorLock, make_relay
    from facegate.edge.door.unit import ChallengeSettings, DoorApp, DoorSettings, RemoteCommands
    from facegate.edge.gallery import Matcher, ModelBinding
    key = KeySource("raw", b"k" * 32)
    store = GalleryStore(tmp_path / "g.fgg", key)
    store.create(ModelBinding.for_embedder(pipeline.embedder))
    remote = RemoteCommands(tmp_path / "state", "", "s", "d", ChallengeSettings(0.25, 8.0))
    app = DoorApp(DoorSettings(), pipeline, Matcher(store.load(), 0.5, 0.4), DoorLock(make_relay("mock", 17, True, None)),
                  AuditLog(tmp_path / "a.jsonl"), remote=remote, gallery_store=store)
    other = ModelBinding("other-model", "ab" * 32, 128)
    (tmp_path / "g.fgg").unlink()
    GalleryStore(tmp_path / "g.fgg", key).create(other)
    assert app.reload_gallery_if_changed(100.0) is False
    assert app.pipeline.embedder is pipeline.embedder and app.matcher.gallery.binding.name != "other-model"
    assert "not installed on this door" in (tmp_path / "a.jsonl").read_text()
