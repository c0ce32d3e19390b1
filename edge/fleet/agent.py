"""The door's sync agent: audit events out, gallery snapshots in, heartbeats, over MQTT (paho).

It runs beside the door loop (`facegate door sync`, its own process under systemd) and touches the door
only through files: it reads the audit log (the outbox), and renames a verified snapshot over the
gallery file, which the door loop re-reads (:meth:`DoorApp.reload_gallery_if_changed`). So the door keeps
deciding when the network, the broker or the site is down, and a kill -9 of either process loses
nothing: the audit log is durable, the outbox pointer moves only on the site's acknowledgement, and the
gallery file is always a whole old or a whole new one.

Delivery: pending entries go out in batches with QoS 1 on a persistent session; the site answers on the
door's retained ``ack`` topic with the highest sequence it has stored. A batch that is not acknowledged
within ``resend_s`` goes out again (the site deduplicates).
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from facegate.edge.durable import atomic_write
from facegate.edge.errors import FacegateError, SiteError
from facegate.edge.fleet import snapshots, topics
from facegate.edge.fleet.commands import CommandSpool
from facegate.edge.fleet.outbox import Outbox
from facegate.edge.gallery.records import ModelBinding

log = logging.getLogger(__name__)

BATCH = 200
RETRY_S = 2.0          # a snapshot download that failed is tried again this often until a newer one is announced


@dataclass
class FleetCredentials:
    """What `facegate door register` received from the site (kept in a 0600 JSON file on the door)."""

    site_id: str
    site_url: str
    door_id: str
    door_group: str
    api_token: str
    broker_host: str
    broker_port: int
    broker_username: str
    broker_password: str
    site_public_key: str
    gallery_key_file: str
    ca_file: str | None = None

    def save(self, path: Path) -> None:
        atomic_write(Path(path), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, path: Path) -> "FleetCredentials":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except FileNotFoundError as exc:
            raise SiteError(f"no fleet credentials at {path}: register the door first (facegate door register)") from exc
        except (ValueError, TypeError) as exc:
            raise SiteError(f"{path} is not a facegate fleet credentials file ({exc})") from exc


class DoorAgent:
    """Connects a door to its site. `start()`, then `stop()`; everything else happens in the background."""

    def __init__(self, creds: FleetCredentials, audit_path: Path, gallery_path: Path, state_dir: Path,
                 binding: ModelBinding, heartbeat_s: float = 10.0, resend_s: float = 5.0, poll_s: float = 0.2,
                 status: dict | None = None) -> None:
        self.creds = creds
        self.gallery_path = Path(gallery_path)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(audit_path, self.state_dir / "outbox.json")
        self.spool = CommandSpool(self.state_dir / "commands")
        self.binding = binding
        self.heartbeat_s, self.resend_s, self.poll_s = heartbeat_s, resend_s, poll_s
        self.status = status if status is not None else {}
        self.gallery_key = Path(creds.gallery_key_file).read_bytes()
        self._state_file = self.state_dir / "gallery.json"
        self.gallery_version = self._load_version()
        self._sent_upto = 0
        self._sent_at = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._announcement: dict | None = None
        self._bundle: dict | None = None                  # a model bundle announced by the site (rollout)
        self.target: ModelBinding | None = None           # the model the site moves this door to, once installed
        self._retry: tuple[dict, float] | None = None     # an announcement whose download failed, and when to retry
        self._last_announcement: dict | None = None
        self._lock = threading.Lock()
        self.last_decision: dict | None = None
        self.refused: list[str] = []          # why snapshots were refused (logged and kept for the status)
        self.started = time.time()
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name="fleet-agent", daemon=True)

    # -- state ----------------------------------------------------------------------------------
    def _load_version(self) -> int:
        try:
            return int(json.loads(self._state_file.read_text())["version"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            log.error("%s is damaged: the next snapshot will be taken whatever its version", self._state_file)
            return 0

    # -- MQTT -----------------------------------------------------------------------------------
    def _topic(self, leaf: str) -> str:
        return topics.door_topic(self.creds.site_id, self.creds.door_id, leaf)

    def _make_client(self):
        import paho.mqtt.client as mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.creds.door_id, clean_session=False)
        client.username_pw_set(self.creds.broker_username, self.creds.broker_password)
        if self.creds.ca_file:
            client.tls_set(ca_certs=self.creds.ca_file)
        client.max_inflight_messages_set(20)
        client.reconnect_delay_set(0.2, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self._connected.clear()
        client.on_message = self._on_message
        client.on_subscribe = lambda *a: self._connected.set()     # subscribed: commands and acks can arrive
        return client

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            log.error("the broker refused the door: %s", reason)
            return
        client.subscribe([(self._topic("ack"), 1), (self._topic("commands"), 1),
                          (topics.gallery_topic(self.creds.site_id, self.creds.door_group or None), 1),
                          (topics.model_topic(self.creds.site_id), 1)])
        self._sent_upto = self.outbox.acked        # resend whatever was in flight before
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._topic("commands"):
            self.spool.drop(message.payload)            # the door loop verifies, applies and audits it
            return
        try:
            body = json.loads(message.payload)
        except ValueError:
            log.warning("ignored a message that is not JSON on %s", message.topic)
            return
        if message.topic == self._topic("ack"):
            seq = body.get("seq") if isinstance(body, dict) else None
            if type(seq) is int:
                self.outbox.ack(seq)
                self._wake.set()
        elif message.topic.endswith("/gallery"):
            with self._lock:
                self._announcement = body
            self._wake.set()
        elif message.topic == topics.model_topic(self.creds.site_id):
            with self._lock:
                self._bundle = body
            self._wake.set()

    # -- the loop -------------------------------------------------------------------------------
    def start(self) -> "DoorAgent":
        self._client.connect_async(self.creds.broker_host, self.creds.broker_port, keepalive=15)
        self._client.loop_start()
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once connected and subscribed (the broker keeps what arrives for this door from then on)."""
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                with self._lock:
                    announcement, self._announcement = self._announcement, None
                    bundle, self._bundle = self._bundle, None
                if bundle is not None:
                    self.install_bundle(bundle)
                    announcement = announcement or self._last_announcement   # its snapshot may be waiting
                if announcement is None and self._retry is not None and time.monotonic() >= self._retry[1]:
                    announcement = self._retry[0]              # the site was unreachable: try again
                if announcement is not None:
                    self._retry = None
                    self.apply_announcement(announcement)
                if self._connected.is_set():
                    self._send_pending()
                    if time.monotonic() - last_beat >= self.heartbeat_s:
                        self._heartbeat()
                        last_beat = time.monotonic()
            except Exception as exc:    # noqa: BLE001 - the agent must outlive any one bad message or file
                log.error("fleet agent: %s: %s", type(exc).__name__, exc)

    def _send_pending(self) -> None:
        now = time.monotonic()
        if self._sent_upto > self.outbox.acked and now - self._sent_at < self.resend_s:
            return                                  # a batch is in flight; wait for its acknowledgement
        entries = self.outbox.pending(BATCH)
        if not entries:
            return
        payload = json.dumps({"door": self.creds.door_id, "entries": entries}, separators=(",", ":"))
        self._client.publish(self._topic("events"), payload, qos=1)
        self._sent_upto, self._sent_at = entries[-1]["seq"], now
        decisions = [e for e in entries if e.get("event") in ("accept", "reject", "lockout", "lockdown_refused")]
        if decisions:
            self.last_decision = {"event": decisions[-1]["event"], "time": decisions[-1]["time"]}

    def _door_state(self) -> dict:
        """The door loop's own report (liveness mode, lockdown) when a site command changed it."""
        try:
            state = json.loads((self.state_dir / "door-state.json").read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _heartbeat(self) -> None:
        beat = {**self.status, **self._door_state(),
                "door": self.creds.door_id, "gallery_version": self.gallery_version, "model": self.binding.name,
                "last_decision": self.last_decision,
                "uptime_s": round(time.time() - self.started), "acked": self.outbox.acked,
                "pending": max(0, self.outbox.tail_seq() - self.outbox.acked)}
        self._client.publish(self._topic("heartbeat"), json.dumps(beat), qos=0)

    # -- gallery snapshots ----------------------------------------------------------------------
    def choose(self, announcement: dict) -> tuple[dict, ModelBinding]:
        """Of a group announcement (one snapshot per model in use), the snapshot to take: the rollout's model
        once its bundle is installed here, else the model this door runs."""
        return pick_snapshot(announcement, ([self.target] if self.target is not None else []) + [self.binding])

    def install_bundle(self, bundle: dict) -> bool:
        """Verify and install an announced model bundle (it is used once its snapshot arrives)."""
        from facegate.edge.fleet import models
        try:
            binding, manifest = models.verify(bundle, self.creds.site_public_key, self.creds.site_id)
            if binding.sha256 != self.binding.sha256:
                models.install(manifest, self.state_dir / "models", self._download_model)
                self.target = binding
                log.info("model %s installed; the door switches with its first gallery", binding.name)
            return True
        except snapshots.SnapshotRefused as exc:
            log.warning("model bundle refused: %s", exc)
            self.refused.append(str(exc))
        except (OSError, SiteError) as exc:
            log.warning("model bundle not fetched (%s); retrying in %g s", exc, RETRY_S)
            with self._lock:
                self._bundle = self._bundle or bundle
        return False

    def apply_announcement(self, announcement: dict) -> bool:
        """Verify, fetch, check and swap in an announced snapshot; False (logged, kept in `refused`) if refused."""
        self._last_announcement = announcement
        chosen, binding = self.choose(announcement)
        try:
            manifest = snapshots.verify_announcement(chosen, self.creds.site_public_key, self.creds.site_id,
                                                     topics.group_name(self.creds.door_group or None),
                                                     self.gallery_version)
            blob = self._download(manifest.version)
            gallery = snapshots.check_file(blob, manifest, self.gallery_key, binding)
        except snapshots.SnapshotRefused as exc:
            if "not newer" not in str(exc):        # the retained announcement of the version in use: normal
                log.warning("gallery snapshot refused: %s", exc)
                self.refused.append(str(exc))
            return False
        except (OSError, SiteError) as exc:
            log.warning("gallery snapshot %s not fetched (%s); retrying in %g s", announcement.get("version"), exc,
                        RETRY_S)
            self._retry = (announcement, time.monotonic() + RETRY_S)
            return False
        atomic_write(self.gallery_path, blob)                   # the door loop sees a whole new file
        atomic_write(self._state_file, json.dumps({"version": manifest.version}).encode())
        self.gallery_version = manifest.version
        if binding.sha256 != self.binding.sha256:               # the gallery decides the model the door runs
            log.info("door moves to model %s with gallery %d", binding.name, manifest.version)
            self.binding, self.target = binding, None
        log.info("gallery snapshot %d in use: %d people", manifest.version, len(gallery.people))
        if self._connected.is_set():
            self._client.publish(self._topic("confirm"), json.dumps({"door": self.creds.door_id,
                                                                     "gallery_version": manifest.version}), qos=1)
        return True

    def _download(self, version: int) -> bytes:
        return self._get(f"/v1/door/gallery/{version}", snapshots.MAX_SNAPSHOT_BYTES)

    def _download_model(self, sha256: str, name: str) -> bytes:
        return self._get(f"/v1/door/model/{sha256}/{name}", 1 << 30)

    def _get(self, path: str, limit: int) -> bytes:
        url = f"{self.creds.site_url.rstrip('/')}{path}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.creds.api_token}"})
        context = ssl.create_default_context(cafile=self.creds.ca_file) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(request, timeout=60, context=context) as response:
                return response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise SiteError(f"the site answered {exc.code} for {path}") from exc


def binding_in_use(gallery_path: Path, configured: ModelBinding, models_dir: Path) -> ModelBinding:
    """The model the door runs: the one its gallery file was made for when that model is installed here
    (after a rollout), else the configured one."""
    from facegate.edge.fleet.models import installed
    from facegate.edge.gallery.fileformat import read_header
    try:
        model = read_header(Path(gallery_path).read_bytes())[0]["model"]
    except (OSError, FacegateError):
        return configured
    if model["sha256"] != configured.sha256 and installed(models_dir, model["sha256"]) is not None:
        return ModelBinding(**model)
    return configured


def pick_snapshot(announcement: dict, bindings: list[ModelBinding]) -> tuple[dict, ModelBinding]:
    """From a group announcement (one signed snapshot per model in use), the first one made for one of
    `bindings` (in order of preference) and that binding; else the first snapshot and the last binding (it
    is then refused for its model, saying so)."""
    listed = announcement.get("snapshots") if isinstance(announcement, dict) else None
    candidates = listed if isinstance(listed, list) else [announcement]
    for binding in bindings:
        for item in candidates:
            if isinstance(item, dict) and item.get("model_sha256") == binding.sha256:
                return item, binding
    return (candidates[0] if candidates and isinstance(candidates[0], dict) else {}), bindings[-1]
