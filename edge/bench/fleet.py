"""`facegate bench fleet --doors N`: N simulated doors against one mosquitto and one site server on loopback.

The site is real (`facegate site serve --run-broker`: its own process with mosquitto as its child, the
generated password file and ACL); the doors are asyncio MQTT clients (aiomqtt) in this process, each
registered over HTTP with its own one-time token and broker account. A simulated door does what the
door's sync agent does: it verifies each signed snapshot announcement, downloads the file over HTTP,
checks its digest and decrypts it with the gallery key, then confirms; and it publishes chained audit
entries in batches with QoS 1, resending what the site has not acknowledged.

Two measurements:
* **propagation**: people are enrolled one at a time (straight into the site's store, as the web admin
  would); the time from each enrolment to every door holding the new snapshot (p50 / p99 over doors,
  and the last door), over several enrolments;
* **ingest**: every door publishes entries for a fixed time; events stored per second by the site, and at
  the end `lost` (sent, never stored) and `duplicates` (stored twice) - both must be 0.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facegate.edge.bench.loopback import free_port, http_once, start_site_server, stop_process_group

log = logging.getLogger(__name__)

PASSWORD = "bench-password-not-secret"


class SimDoor:
    """One simulated door: its credentials, its chain, and what it has seen."""

    def __init__(self, creds: dict, web_port: int, binding) -> None:
        self.creds, self.web_port, self.binding = creds, web_port, binding
        self.key = base64.b64decode(creds["gallery_key"])
        self.seq, self.prev = 0, "0" * 64
        self.acked = 0
        self.version = 0
        self.applied_at: dict[int, float] = {}
        self.sent = 0
        self.refused = 0
        self.unacked: list[dict] = []
        self.resent = 0

    def entries(self, n: int) -> list[dict]:
        out = []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
        for _ in range(n):
            self.seq += 1
            mac = hashlib.sha256(f"{self.creds['door_id']}:{self.seq}:{self.prev}".encode()).hexdigest()
            out.append({"seq": self.seq, "time": stamp, "event": "accept" if self.seq % 3 else "reject",
                        "decision": "accept" if self.seq % 3 else "reject", "score": 0.7, "prev": self.prev, "mac": mac})
            self.prev = mac
        self.unacked += out
        return out

    def on_ack(self, seq: int) -> None:
        self.acked = max(self.acked, seq)
        self.unacked = [e for e in self.unacked if e["seq"] > self.acked]

    def topic(self, leaf: str) -> str:
        from facegate.edge.fleet import topics
        return topics.door_topic(self.creds["site_id"], self.creds["door_id"], leaf)

    async def apply(self, client, announcement: dict) -> None:
        from facegate.edge.fleet import snapshots
        from facegate.edge.fleet.agent import pick_snapshot
        chosen, _ = pick_snapshot(announcement, [self.binding])
        try:
            manifest = snapshots.verify_announcement(chosen, self.creds["site_public_key"], self.creds["site_id"],
                                                     self.creds["door_group"] or "_all", self.version)
        except snapshots.SnapshotRefused:
            return
        head = (f"GET /v1/door/gallery/{manifest.version} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.creds['api_token']}\r\nContent-Length: 0\r\n\r\n").encode()
        status, blob = await http_once(self.web_port, head, b"")
        if status != 200:
            self.refused += 1
            return
        snapshots.check_file(blob, manifest, self.key, self.binding)
        self.version = manifest.version
        self.applied_at[manifest.version] = time.time()
        await client.publish(self.topic("confirm"), json.dumps({"door": self.creds["door_id"],
                                                                "gallery_version": manifest.version}), qos=1)

    async def run(self, port: int, stop: asyncio.Event, sending: asyncio.Event, batch: int, interval: float,
                  ready: asyncio.Event) -> None:
        import aiomqtt

        from facegate.edge.fleet import topics
        gallery_topic = topics.gallery_topic(self.creds["site_id"], self.creds["door_group"] or None)
        async with aiomqtt.Client("127.0.0.1", port, identifier=self.creds["door_id"], clean_session=False,
                                  username=self.creds["broker_username"], password=self.creds["broker_password"],
                                  keepalive=30, max_inflight_messages=50) as client:
            await client.subscribe([(self.topic("ack"), 1), (gallery_topic, 1)])
            ready.set()

            async def publisher() -> None:
                last_sent_at = 0.0
                while not stop.is_set():
                    if sending.is_set():
                        if self.seq - self.acked < 4 * batch:
                            await client.publish(self.topic("events"), json.dumps(
                                {"door": self.creds["door_id"], "entries": self.entries(batch)}), qos=1)
                            self.sent += batch
                            last_sent_at = time.monotonic()
                        elif time.monotonic() - last_sent_at > 5:      # unacknowledged for 5 s: send again
                            await self._resend(client, batch)
                            last_sent_at = time.monotonic()
                    await asyncio.sleep(interval)
            task = asyncio.create_task(publisher())
            try:
                async for message in client.messages:
                    body = json.loads(message.payload)
                    if str(message.topic) == self.topic("ack"):
                        self.on_ack(int(body.get("seq", 0)))
                    else:
                        await self.apply(client, body)
                    if stop.is_set():
                        break
            finally:
                task.cancel()

    async def _resend(self, client, batch: int) -> None:
        """What the site has not acknowledged, again (it deduplicates), as the door's agent does."""
        for i in range(0, len(self.unacked), batch):
            await client.publish(self.topic("events"), json.dumps(
                {"door": self.creds["door_id"], "entries": self.unacked[i:i + batch]}), qos=1)
        self.resent += len(self.unacked)


async def _fleet(doors: list[SimDoor], mqtt_port: int, enrol, enrolments: int, ingest_s: float, batch: int,
                 interval: float, progress) -> dict:
    stop, sending = asyncio.Event(), asyncio.Event()
    readies = [asyncio.Event() for _ in doors]
    tasks = [asyncio.create_task(d.run(mqtt_port, stop, sending, batch, interval, r)) for d, r in zip(doors, readies)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    # the first snapshot (empty group) reaches everyone before timing starts
    await _until(lambda: all(d.version >= 1 for d in doors), 120)
    propagation = []
    for k in range(enrolments):
        target = max(d.version for d in doors) + 1
        t0 = time.time()
        await asyncio.get_running_loop().run_in_executor(None, enrol, k)
        await _until(lambda: all(d.version >= target for d in doors), 60)
        delays = sorted(d.applied_at[target] - t0 for d in doors)
        propagation.append({"p50_s": round(float(np.percentile(delays, 50)), 3),
                            "p99_s": round(float(np.percentile(delays, 99)), 3), "last_s": round(delays[-1], 3)})
        progress(f"enrolment {k + 1}: every door in {delays[-1]:.2f} s (p50 {propagation[-1]['p50_s']} s)")
    sending.set()
    t0 = time.monotonic()
    await asyncio.sleep(ingest_s)
    sending.clear()
    sent_window = sum(d.sent for d in doors)
    await _until(lambda: all(d.acked >= d.seq for d in doors), 120)
    drained = time.monotonic() - t0
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"propagation": propagation, "sent": sent_window, "ingest_window_s": ingest_s, "drained_s": round(drained, 2)}


async def _until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout:g} s")
        await asyncio.sleep(0.02)


def bench_fleet(doors: int = 200, enrolments: int = 5, ingest_s: float = 10.0, batch: int = 10,
                interval: float = 0.05, progress=print) -> dict:
    from facegate.edge.fleet import provisioning
    from facegate.edge.gallery.records import ModelBinding
    from facegate.edge.registry import get_embedder
    from facegate.edge.site import events, people
    from facegate.edge.site.folder import init_site, open_site
    from facegate.edge.site.people import PhotoResult
    binding = ModelBinding.for_embedder(get_embedder(None))
    root = Path(tempfile.mkdtemp(prefix="facegate-bench-fleet-"))
    proc = None
    try:
        site = init_site(root / "site", "admin", PASSWORD)
        tokens = []
        for i in range(doors):
            door = events.add_door(site.store, f"door {i:04d}", "lobby" if i % 2 else "")
            tokens.append(provisioning.create_registration(site.store, door))
        site.close()
        web_port, mqtt_port = free_port(), free_port()
        proc = start_site_server(root / "site", web_port, root / "serve.log", "--mqtt-port", str(mqtt_port),
                                 "--run-broker", "--no-liveness")
        creds = [asyncio.run(_register(web_port, t)) for t in tokens]
        progress(f"{doors} doors registered (one-time tokens, broker accounts)")
        site = open_site(root / "site")
        rng = np.random.default_rng(0)

        def enrol(k: int) -> None:
            v = rng.normal(size=(2, binding.dim)).astype(np.float32)
            people.enrol(site.store, site.sealer, binding, f"person {k}",
                         [PhotoResult(f"{j}.jpg", True, [], None, x, b"") for j, x in enumerate(v)])
        sims = [SimDoor(c, web_port, binding) for c in creds]
        result = asyncio.run(_fleet(sims, mqtt_port, enrol, enrolments, ingest_s, batch, interval, progress))
        stored = site.store.one("SELECT COUNT(*) AS n, COUNT(DISTINCT door_id || ':' || seq) AS u FROM events")
        expected = sum(d.seq for d in sims)              # every door numbers its entries from 1
        lost = expected - stored["u"]
        alarms = sum(1 for _ in events.alarms(site.store))
        site.close()
        last = [p["last_s"] for p in result["propagation"]]
        out = {"doors": doors, "enrolments": enrolments, "batch": batch, "cpus": os.cpu_count(),
               "propagation": result["propagation"],
               "propagation_last_p50_s": round(float(np.percentile(last, 50)), 3),
               "propagation_last_p99_s": round(float(np.percentile(last, 99)), 3),
               "events_sent": expected, "events_stored": stored["n"],
               "events_per_s": round(result["sent"] / result["ingest_window_s"], 1),
               "ingest_drained_s": result["drained_s"],
               "stored_per_s": round(stored["n"] / max(result["drained_s"], 1e-9), 1),
               "lost": int(lost), "duplicates": int(stored["n"] - stored["u"]), "alarms": alarms,
               "resent_by_doors": sum(d.resent for d in sims),
               "snapshot_downloads_failed": sum(d.refused for d in sims)}
        progress(f"events: {out['events_sent']} sent, {out['events_stored']} stored ({out['stored_per_s']}/s until all "
                 f"acknowledged), lost {out['lost']}, duplicates {out['duplicates']}, alarms {alarms}")
        return out
    finally:
        if proc is not None:
            stop_process_group(proc)                       # its mosquitto too, whatever happened
        shutil.rmtree(root, ignore_errors=True)


async def _register(port: int, token: str) -> dict:
    body = json.dumps({"token": token}).encode()
    head = (f"POST /v1/door/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status, data = await http_once(port, head, body)
    if status != 200:
        raise RuntimeError(f"registration failed ({status}): {data[:200]!r}")
    return json.loads(data)


def markdown(result: dict) -> str:
    rows = "\n".join(f"| {i + 1} | {p['p50_s']} | {p['p99_s']} | {p['last_s']} |" for i, p in enumerate(result["propagation"]))
    return (f"{result['doors']} simulated doors, {result['cpus']} CPUs\n\n"
            "| enrolment | p50 s (doors) | p99 s | last door s |\n|---|---|---|---|\n" + rows + "\n\n"
            f"last door: p50 {result['propagation_last_p50_s']} s, p99 {result['propagation_last_p99_s']} s over "
            f"{result['enrolments']} enrolments\n\n"
            f"events: {result['events_sent']} sent at {result['events_per_s']}/s, {result['events_stored']} stored, "
            f"{result['stored_per_s']}/s until all acknowledged; lost {result['lost']}, duplicates {result['duplicates']}, "
            f"chain alarms {result['alarms']}\n")
