"""The site's side of the fleet: events in (deduplicated, chain-checked, acknowledged), heartbeats and
gallery confirmations in, signed snapshots out.

One paho client on a persistent session (QoS 1 subscriptions survive a site restart in the broker), a
worker thread that does all store work off the network thread, and the snapshot publisher: whenever
the people change, each door group in use gets a new version, stored and announced on its retained
topic. Messages from a revoked or unknown door are dropped and logged.
"""
from __future__ import annotations

import json
import logging
import queue
import threading

import numpy as np

from facegate.edge.errors import FacegateError
from facegate.edge.fleet import broker as broker_files
from facegate.edge.fleet import models, provisioning, snapshots, topics
from facegate.edge.gallery.records import Gallery, ModelBinding
from facegate.edge.site import events, people
from facegate.edge.site.store import now

log = logging.getLogger(__name__)


def subset(gallery: Gallery, keep: set[str]) -> Gallery:
    """The people of `keep` with their templates (order kept)."""
    out = Gallery(gallery.binding, gallery.template_dtype, projection=gallery.projection)
    out.person_order = [pid for pid in gallery.person_order if pid in keep]
    out.people = {pid: gallery.people[pid] for pid in out.person_order}
    new_index = {pid: i for i, pid in enumerate(out.person_order)}
    owners = [gallery.person_order[o] for o in gallery.owners]
    rows = [r for r, pid in enumerate(owners) if pid in keep]
    out.templates = gallery.templates[rows].copy()
    out.owners = np.array([new_index[owners[r]] for r in rows], dtype=np.int64)
    out.crops = [None] * len(rows)
    return out


def snapshot_data(store, door_group: str | None, version: int) -> bytes | None:
    """The stored snapshot file of a door group at `version` (what a door downloads)."""
    row = store.one("SELECT data FROM snapshots WHERE door_group=? AND version=?", (topics.group_name(door_group), version))
    return row["data"] if row else None


class SiteFleet:
    """The site's fleet service (start / stop), beside the web server in `facegate site serve`."""

    def __init__(self, site, binding: ModelBinding, broker_host: str, broker_port: int,
                 mosquitto: broker_files.Mosquitto | None = None, ca_file: str | None = None) -> None:
        self.site, self.store, self.binding = site, site.store, binding
        self.broker_host, self.broker_port = broker_host, broker_port
        self.mosquitto = mosquitto
        self.ca_file = ca_file                 # the broker's TLS certificate authority (None: plain MQTT on loopback)
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name="site-fleet", daemon=True)
        self._published_generation: dict[str, tuple] = {}
        self._published_model: int | None = None

    # -- broker accounts --------------------------------------------------------------------------
    def sync_broker(self, revoked: bool = False) -> None:
        """Rewrite the broker's password file and ACL from the store, and have mosquitto reload them. After a
        revocation mosquitto is restarted instead: a reload does not end connections already open, and a
        revoked door must lose its session at once (the others reconnect within seconds; their queued
        messages are in the broker's persistence)."""
        if self.mosquitto is None:
            return
        users, acl = provisioning.broker_accounts(self.store, self.site)
        broker_files.write_files(self.mosquitto.conf.parent, self.broker_port, users, acl, self.broker_host,
                                 self.mosquitto.tls_cert, self.mosquitto.tls_key)
        if revoked:
            self.mosquitto.stop()
            self.mosquitto.start()
        else:
            self.mosquitto.reload()

    # -- MQTT -------------------------------------------------------------------------------------
    def _make_client(self):
        import paho.mqtt.client as mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"site-{self.site.site_id}", clean_session=False)
        client.username_pw_set(provisioning.SITE_USER, self.site.broker_password)
        if self.ca_file:
            client.tls_set(ca_certs=self.ca_file)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(0.2, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self._connected.clear()
        client.on_message = lambda c, u, m: self._queue.put((m.topic, m.payload))
        return client

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            log.error("the broker refused the site: %s", reason)
            return
        client.subscribe([(t, 1) for t in topics.site_subscriptions(self.site.site_id)])
        self._connected.set()
        self._published_generation.clear()           # re-announce (retained anyway; cheap)
        self._published_model = None

    def start(self) -> "SiteFleet":
        self._client.connect_async(self.broker_host, self.broker_port, keepalive=15)
        self._client.loop_start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    # -- the worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = ()
            try:
                if item:
                    self.handle(*item)
                if self._connected.is_set():
                    self.publish_snapshots()
            except Exception as exc:   # noqa: BLE001 - one bad message must not stop the site's fleet service
                log.error("fleet: %s: %s", type(exc).__name__, exc)

    def handle(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse_door_topic(topic)
        if parsed is None or parsed[0] != self.site.site_id:
            return
        _, door_id, leaf = parsed
        door = self.store.one("SELECT id, revoked FROM doors WHERE id=?", (door_id,))
        if door is None or door["revoked"] is not None:
            log.warning("dropped a %s message from %s door %s", leaf, "revoked" if door else "unknown", door_id)
            return
        try:
            body = json.loads(payload)
        except ValueError:
            log.warning("dropped a %s message from door %s: not JSON", leaf, door_id)
            return
        if not isinstance(body, dict):
            return
        if leaf == "events":
            try:
                events.ingest(self.store, door_id, body.get("entries"))
            except FacegateError as exc:
                log.warning("events from door %s refused: %s", door_id, exc)
            acked = events.acked_seq(self.store, door_id)
            self._client.publish(topics.door_topic(self.site.site_id, door_id, "ack"), json.dumps({"seq": acked}),
                                 qos=1, retain=True)
        elif leaf == "heartbeat":
            events.heartbeat(self.store, door_id, {k: body.get(k) for k in ("gallery_version", "model", "liveness_mode")}
                             | {"status": "lockdown" if body.get("lockdown") is True else "online"})
        elif leaf == "confirm":
            version = body.get("gallery_version")
            if type(version) is int:
                self.store.execute("UPDATE doors SET gallery_version=?, last_heartbeat=? WHERE id=?",
                                   (version, now(), door_id))

    def make_command(self, door_id: str, action: str, actor: str, mode: str | None = None) -> dict:
        """A signed command for one door (record it in the admin trail, then publish it)."""
        from facegate.edge.fleet import commands
        return commands.make(self.site.signing_key, self.site.site_id, door_id, action, actor, mode)

    def publish_command(self, command: dict) -> None:
        self._client.publish(topics.door_topic(self.site.site_id, command["door"], "commands"), json.dumps(command),
                             qos=1)

    def send_command(self, door_id: str, action: str, actor: str, mode: str | None = None) -> dict:
        """Sign and publish a command to one door (QoS 1); the command as sent."""
        command = self.make_command(door_id, action, actor, mode)
        self.publish_command(command)
        return command

    # -- snapshots --------------------------------------------------------------------------------------
    def door_groups(self) -> list[str]:
        rows = self.store.query("SELECT DISTINCT door_group FROM doors WHERE revoked IS NULL")
        return sorted({topics.group_name(r["door_group"] or None) for r in rows})

    def models(self) -> list[ModelBinding]:
        """The models doors may run: the site's, and the one a rollout moves them to."""
        target = models.rollout(self.store)
        out = [self.binding]
        if target is not None and target["model"]["sha256"] != self.binding.sha256:
            out.append(ModelBinding(**target["model"]))
        return out

    def publish_snapshots(self) -> list[tuple[str, int]]:
        """Build and announce a new snapshot for every door group (and model in use) whose people changed;
        what was built. One retained announcement per group lists the snapshot of each model."""
        generation = self.store.counter("people_generation")
        in_use = self.models()
        key = (generation, tuple(b.sha256 for b in in_use))
        done = []
        for group in self.door_groups():
            if self._published_generation.get(group) == key:
                continue
            announcements = []
            for binding in in_use:
                last = self.store.one("SELECT version, people_generation, announcement FROM snapshots WHERE door_group=? "
                                      "AND (model_sha256=? OR model_sha256 IS NULL) ORDER BY version DESC LIMIT 1",
                                      (group, binding.sha256))
                if last is not None and last["people_generation"] == generation:
                    announcements.append(json.loads(last["announcement"]))
                    continue
                top = self.store.one("SELECT MAX(version) AS v FROM snapshots WHERE door_group=?", (group,))["v"] or 0
                announcements.append(json.loads(self._build(group, top + 1, generation, binding)))
                done.append((group, top + 1))
            self._client.publish(topics.gallery_topic(self.site.site_id, None if group == topics.ALL_DOORS_GROUP
                                                      else group), json.dumps({"snapshots": announcements}),
                                 qos=1, retain=True)
            self._published_generation[group] = key
        self.publish_model()
        return done

    def publish_model(self) -> None:
        """Announce the rollout's signed model bundle (retained), once per rollout and connection."""
        target = models.rollout(self.store)
        if target is None or self._published_model == target["version"]:
            return
        self._client.publish(topics.model_topic(self.site.site_id),
                             json.dumps(models.sign(self.site.signing_key, self.site.site_id, target)), qos=1, retain=True)
        self._published_model = target["version"]

    def _build(self, group: str, version: int, generation: int, binding: ModelBinding) -> str:
        everyone = people.gallery(self.store, self.site.sealer, binding)
        if group == topics.ALL_DOORS_GROUP:
            keep = set(everyone.person_order)
        else:
            keep = {pid for pid, p in everyone.people.items() if not p.groups or group in p.groups}
        blob, announcement = snapshots.build(subset(everyone, keep), self.site.gallery_key, self.site.signing_key,
                                             self.site.site_id, group, version)
        text = json.dumps(announcement, sort_keys=True)
        self.store.execute("INSERT INTO snapshots (door_group, version, people_generation, sha256, announcement, data, "
                           "created, model_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (group, version, generation, announcement["sha256"], text, blob, now(), binding.sha256))
        log.info("gallery snapshot %s v%d (%s): %d people", group, version, binding.name, len(keep))
        return text
