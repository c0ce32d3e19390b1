"""Faults with real processes: a `facegate door run` deciding from recorded frames and its `facegate door
sync` agent, against the real mosquitto and site server. The broker and then the site go away and come
back; the agent is killed with SIGKILL while it delivers events and while it swaps galleries; the door
process too. Afterwards: every audit entry is at the site exactly once, the chains verify, the door
always had a whole gallery, and gallery updates go on."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

pytest.importorskip("fastapi", reason="the site server needs the `site` extra")
pytest.importorskip("paho.mqtt.client", reason="the fleet needs paho-mqtt")
from test_fleet import SiteUnderTest, wait_for  # noqa: E402

from facegate.apps.cli import main  # noqa: E402
from facegate.edge.bench.soak import prepare  # noqa: E402
from facegate.edge.door.audit import verify  # noqa: E402
from facegate.edge.fleet.broker import mosquitto_binary  # noqa: E402
from facegate.edge.fleet.registration import register_door  # noqa: E402
from facegate.edge.gallery import GalleryStore, KeySource  # noqa: E402
from facegate.edge.images import list_images  # noqa: E402
from facegate.edge.site import events, people  # noqa: E402
from facegate.edge.site.people import assess_photos  # noqa: E402

pytestmark = pytest.mark.slow
if mosquitto_binary() is None:
    pytest.skip("mosquitto is not installed (Debian package `mosquitto`)", allow_module_level=True)

CLI = [sys.executable, "-m", "facegate.apps.cli"]


def tail_seq(audit: Path) -> int:
    return json.loads(audit.with_name(audit.name + ".seal").read_text())["tail"]["seq"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def test_outages_and_kill9_lose_nothing(tmp_path, celeb5, pipeline):
    site = SiteUnderTest(tmp_path)
    procs: list[subprocess.Popen] = []
    try:
        photos = [(p.name, p.read_bytes()) for p in list_images(celeb5 / "train" / "jerry_seinfeld")[:5]]
        jerry = people.enrol(site.site.store, site.site.sealer, site.service.binding, "Jerry",
                             assess_photos(site.service.pipeline(), photos, check_liveness=False))
        door_id, token = site.add_door("front")
        creds = register_door(site.web.url, token, tmp_path / "fleet")
        workdir = tmp_path / "door"
        toml = prepare(workdir, celeb5, fps=30.0)
        text = toml.read_text()
        text = text.replace(f'path = "{workdir / "gallery.fgg"}"', f'path = "{workdir / "fleet-gallery.fgg"}"')
        text = text.replace(f'key_file = "{workdir / "gallery.key"}"', f'key_file = "{creds.gallery_key_file}"')
        # decisions keep coming: no lockout for the recorded stranger, a short cool-down after each accept
        toml.write_text(text + f'[fleet]\ncredentials = "{tmp_path / "fleet" / "fleet.json"}"\n'
                        '[door.policy]\nmax_failures = 1000\ncooldown_s = 1.0\n')
        gallery_file = workdir / "fleet-gallery.fgg"
        audit = workdir / "audit" / "audit.jsonl"
        key = KeySource.from_keyfile(creds.gallery_key_file)

        sync = start(["door", "sync", "--config", str(toml), "--heartbeat", "0.5"], tmp_path / "sync.log")
        procs.append(sync)
        wait_for(lambda: gallery_file.exists(), 30)          # the first snapshot, before the door starts
        assert jerry in GalleryStore(gallery_file, key).load().people
        door = start(["door", "run", "--config", str(toml), "--realtime"], tmp_path / "door.log")
        procs.append(door)
        store = site.site.store
        wait_for(lambda: any(e["event"] == "accept" for e in events.search(store, door=door_id)), 60)

        site.broker.stop()                                   # the broker goes; the door keeps deciding
        before = tail_seq(audit)
        wait_for(lambda: tail_seq(audit) > before + 3, 30)
        site.stop_site()                                     # then the site server
        before = tail_seq(audit)
        wait_for(lambda: tail_seq(audit) > before + 3, 30)
        site.broker.start()
        site.start_site()
        wait_for(lambda: events.acked_seq(store, door_id) >= before, 60)

        for round_ in range(4):                              # SIGKILL the agent while it delivers and swaps
            people.rename(store, jerry, f"Jerry {round_}")   # a new snapshot version each time
            time.sleep(0.15 * (round_ + 1))
            sync.send_signal(signal.SIGKILL)
            sync.wait()
            held = GalleryStore(gallery_file, key).load()    # a whole gallery, old or new
            assert jerry in held.people
            json.loads((workdir / "audit" / "fleet-state" / "outbox.json").read_text())
            sync = start(["door", "sync", "--config", str(toml), "--heartbeat", "0.5"], tmp_path / "sync.log")
            procs.append(sync)
        door.send_signal(signal.SIGKILL)                     # and the door itself, mid-decision
        door.wait()
        door = start(["door", "run", "--config", str(toml), "--realtime"], tmp_path / "door.log")
        procs.append(door)
        time.sleep(2)

        newcomer = people.enrol(store, site.site.sealer, site.service.binding, "Elaine",
                                [people.PhotoResult("x.jpg", True, [], None, site.service.pipeline().embed(
                                    cv2.cvtColor(cv2.imread(str(list_images(celeb5 / "train" / "madonna")[0])),
                                                 cv2.COLOR_BGR2RGB), require_quality=False).vector, b"")])
        wait_for(lambda: newcomer in GalleryStore(gallery_file, key).load().people, 30)   # updates resumed
        wait_for(lambda: '"gallery_reload"' in audit.read_text(), 15)   # and the running door swapped it in

        door.send_signal(signal.SIGTERM)
        assert door.wait(timeout=60) == 130
        final = tail_seq(audit)
        wait_for(lambda: events.acked_seq(store, door_id) == final, 60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        site.close()
    verify(audit, key_file=audit.with_name("audit.jsonl.key"))            # the door's own chain is whole
    db = sqlite3.connect(site.site.folder / "site.db")
    seqs = [r[0] for r in db.execute("SELECT seq FROM events WHERE door_id=? ORDER BY seq", (door_id,))]
    assert seqs == list(range(1, final + 1))                  # 0 lost, 0 duplicates in the site's view
    links = db.execute("SELECT COUNT(*) FROM events a JOIN events b ON b.door_id = a.door_id AND b.seq = a.seq + 1 "
                       "WHERE a.door_id=? AND a.mac != b.prev", (door_id,)).fetchone()[0]
    assert links == 0 and db.execute("SELECT COUNT(*) FROM alarms").fetchone()[0] == 0
    kinds = {r[0] for r in db.execute("SELECT DISTINCT event FROM events WHERE door_id=?", (door_id,))}
    assert {"accept", "gallery_reload"} <= kinds
    assert main(["audit", "verify", str(audit)]) == 0
