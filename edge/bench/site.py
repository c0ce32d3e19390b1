"""`facegate bench site`: the verification API under concurrent clients on loopback.

For each gallery size a site is created in a temporary folder with that many sealed templates (two per
person, random unit vectors: the matrix product's cost does not depend on what the vectors mean), the
real server is started as its own process (`facegate site serve`), and keep-alive clients hammer
``POST /v1/identify`` for a fixed time: with embeddings (each probe a noisy copy of an enrolled
template, so every answer can be checked: it must name that template's person) and, fewer, with a real
camera frame of a live person (detect, liveness, embed on the server; a refused frame is an error).
The load generator is a few lines of raw HTTP/1.1 on asyncio streams, so the client costs the shared
CPU as little as possible.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from facegate.edge.bench.loopback import free_port, http_request, start_site_server, stop_process_group

log = logging.getLogger(__name__)

PASSWORD = "bench-password-not-secret"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _populate(site, binding, templates: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`templates` sealed unit vectors, two per person, bulk-inserted; (vectors, owner id per vector)."""
    from facegate.edge.site.store import now
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(templates, binding.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    owners = [f"{i // 2:012x}" for i in range(templates)]
    t = now()
    people_rows = [(pid, f"person {pid}", f"person {pid}", "", t, t) for pid in dict.fromkeys(owners)]
    template_rows = [(pid, binding.sha256, site.sealer.seal(v.tobytes(), f"template:{pid}"), t)
                     for pid, v in zip(owners, vectors)]
    with site.store.transaction():
        site.store.execute_many("INSERT INTO people (id, name, name_key, door_groups, created, updated) "
                                "VALUES (?, ?, ?, ?, ?, ?)", people_rows)
        site.store.execute_many("INSERT INTO templates (person_id, model_sha256, vector, created) VALUES (?, ?, ?, ?)",
                                template_rows)
        site.store.bump("people_generation")
    return vectors, owners


def _post(path: str, token: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode()


async def _load(port: int, requests: list[tuple[bytes, bytes, str | None]], clients: int, seconds: float,
                max_requests: int | None = None) -> dict:
    """`clients` keep-alive connections sending `requests` round-robin for `seconds` (or `max_requests`)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    wrong = 0
    sent = 0
    stop_at = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal wrong, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.monotonic() < stop_at and (max_requests is None or sent < max_requests):
                sent += 1
                head, body, expected = requests[i % len(requests)]
                i += clients
                t0 = time.perf_counter()
                status, data = await http_request(reader, writer, head, body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                elif expected is not None and json.loads(data).get("person") != expected:
                    wrong += 1
        finally:
            writer.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - t0
    return {"requests": len(latencies), "seconds": round(elapsed, 2), "per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 50), 2), "p99_ms": round(_percentile(latencies, 99), 2),
            "errors": errors, "wrong_person": wrong}


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def bench_site(sizes=(1_000, 10_000, 100_000), clients: int = 16, seconds: float = 5.0, image_clients: int = 2,
               image_seconds: float = 5.0, photo: Path | None = None, port: int | None = None,
               progress=print) -> dict:
    """Identify-by-embedding and identify-by-image throughput and latency per gallery size."""

    from facegate.edge.gallery.records import ModelBinding
    from facegate.edge.registry import get_embedder
    from facegate.edge.site import accounts
    from facegate.edge.site.folder import init_site
    binding = ModelBinding.for_embedder(get_embedder(None))
    image_body = Path(photo).read_bytes() if photo is not None else None
    rows = []
    for size in sizes:
        root = Path(tempfile.mkdtemp(prefix="facegate-bench-site-"))
        proc = None
        try:
            site = init_site(root / "site", "admin", PASSWORD)
            t0 = time.perf_counter()
            vectors, owners = _populate(site, binding, size)
            token = accounts.create_token(site.store, "bench", ["verify", "verify:embedding"])
            populate_s = time.perf_counter() - t0
            site.close()
            listen = port or free_port()
            proc = start_site_server(root / "site", listen, root / "serve.log")
            rng = np.random.default_rng(1)
            picks = rng.choice(size, size=min(size, 512), replace=False)
            requests = []
            for i in picks:
                probe = vectors[i] + rng.normal(scale=0.02, size=vectors.shape[1]).astype(np.float32)
                body = json.dumps({"embedding": [round(float(x), 6) for x in probe]}).encode()
                requests.append((_post("/v1/identify", token, body, "application/json"), body, owners[i]))
            t0 = time.perf_counter()
            asyncio.run(_load(port=listen, requests=requests[:1], clients=1, seconds=60, max_requests=1))
            first_s = time.perf_counter() - t0          # includes opening and decrypting every template
            asyncio.run(_load(listen, requests, clients, min(1.0, seconds)))   # warm-up
            embedding = asyncio.run(_load(listen, requests, clients, seconds))
            row = {"templates": size, "populate_s": round(populate_s, 1), "first_request_s": round(first_s, 2),
                   "embedding": embedding}
            if image_body is not None:
                body, kind = _multipart("image", "door.jpg", image_body)
                asyncio.run(_load(listen, [(_post("/v1/identify", token, body, kind), body, None)], 1, 60, max_requests=1))
                row["image"] = asyncio.run(_load(listen, [(_post("/v1/identify", token, body, kind), body, None)],
                                                 image_clients, image_seconds))
            rows.append(row)
            e = row["embedding"]
            progress(f"{size:>9,} templates: by embedding {e['per_s']:.0f}/s p50 {e['p50_ms']} ms p99 {e['p99_ms']} ms "
                     f"(errors {sum(e['errors'].values())}, wrong {e['wrong_person']})"
                     + (f"; by image {row['image']['per_s']:.1f}/s p50 {row['image']['p50_ms']} ms" if "image" in row else ""))
        finally:
            if proc is not None:
                stop_process_group(proc)
            shutil.rmtree(root, ignore_errors=True)
    return {"clients": clients, "seconds": seconds, "image_clients": image_clients, "cpus": os.cpu_count(),
            "dim": binding.dim, "model": binding.name, "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"{result['clients']} keep-alive clients, {result['seconds']:g} s per size, {result['cpus']} CPUs, "
             f"{result['dim']}-D templates ({result['model']})", "",
             "| templates | identify by embedding /s | p50 ms | p99 ms | errors | wrong person | by image /s | p50 ms | p99 ms "
             "| errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        e, i = r["embedding"], r.get("image")
        image = f"{i['per_s']:.1f} | {i['p50_ms']} | {i['p99_ms']} | {sum(i['errors'].values())} |" if i else "— | — | — | — |"
        lines.append(f"| {r['templates']:,} | {e['per_s']:.0f} | {e['p50_ms']} | {e['p99_ms']} | {sum(e['errors'].values())} | "
                     f"{e['wrong_person']} | {image}")
    return "\n".join(lines) + "\n"
