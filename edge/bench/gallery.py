"""Gallery speed: 1:N identify at growing sizes, open (decrypt + load) time, enrol throughput."""
from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import numpy as np

from facegate.edge.timing import median_ms, sample_seconds, spread_ms


def bench_gallery(dim: int = 128, sizes=(1_000, 10_000, 100_000), repeats: int = 50, batch: int = 16) -> dict:
    """1:N at each size (one probe, and a batch of `batch` probes in one matrix product), then open time
    and enrol throughput on a real encrypted file."""
    from facegate.edge.gallery import GalleryStore, KeySource, Matcher, ModelBinding
    from facegate.edge.gallery.records import Gallery, Person

    rng = np.random.default_rng(0)
    binding = ModelBinding("bench", "00" * 32, dim)
    out: dict = {"identify_ms": {}, "identify_p90_ms": {}, "identify_batch_ms": {}, "batch": batch,
                 "repeats": repeats, "dim": dim}
    for n in sizes:
        g = Gallery(binding)
        people = n // 2  # two templates per person
        g.person_order = [f"{i:012x}" for i in range(people)]
        g.people = {pid: Person(pid, f"person {pid}") for pid in g.person_order}
        v = rng.normal(size=(n, dim)).astype(np.float32)
        g.templates = v / np.linalg.norm(v, axis=1, keepdims=True)
        g.owners = np.repeat(np.arange(people), 2)
        m = Matcher(g, 0.5)
        probe = g.templates[n // 3]
        spread = spread_ms(sample_seconds(lambda: m.identify(probe, top_k=5), repeats))
        out["identify_ms"][str(n)] = spread["median_ms"]
        out["identify_p90_ms"][str(n)] = spread["p90_ms"]
        probes = g.templates[rng.integers(0, n, size=batch)]
        batched = spread_ms(sample_seconds(lambda: m.identify_many(probes, top_k=5), max(5, repeats // 5)))
        out["identify_batch_ms"][str(n)] = batched["median_ms"]
    with tempfile.TemporaryDirectory() as tmp:
        key = KeySource("raw", secrets.token_bytes(32))
        store = GalleryStore(Path(tmp) / "g.fgg", key)
        g = store.create(binding)
        with store.transaction() as g:
            for i in range(10_000):
                p = g.add_person(f"person {i}")
                g.add_templates(p.id, rng.normal(size=(2, dim)))
        out["file_mb_10k_people"] = round(store.path.stat().st_size / 1e6, 2)
        out["open_ms_10k_people"] = median_ms(lambda: GalleryStore(store.path, key).load(), 5)
        small = GalleryStore(Path(tmp) / "small.fgg", key)
        small.create(binding)
        with small.transaction() as g:
            for i in range(1000):
                g.add_templates(g.add_person(f"p{i}").id, rng.normal(size=(2, dim)))
        t0 = time.perf_counter()
        count = 20
        for i in range(count):
            with small.transaction() as g:
                g.add_templates(g.add_person(f"new {i}").id, rng.normal(size=(3, dim)))
        out["enroll_per_s_1k_people"] = round(count / (time.perf_counter() - t0), 1)
    return out
