"""Gallery speed: 1:N identify at growing sizes per template storage, open (decrypt + load) time and file
size, enrol throughput."""
from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegate.edge.timing import median_ms, sample_seconds, spread_ms

STORAGES = ("float32", "float16", "int8")


def parse_storage(storage: str) -> tuple[str, int | None]:
    """"int8" -> ("int8", None); "int8+pca64" -> ("int8", 64)."""
    dtype, _, pca = storage.partition("+pca")
    if dtype not in STORAGES or (pca and not pca.isdigit()):
        raise ValueError(f"template storage {storage!r}: one of {', '.join(STORAGES)}, optionally +pcaN (int8+pca64)")
    return dtype, int(pca) if pca else None


def _gallery(binding, n: int, storage: str, rng: np.random.Generator):
    """n unit templates, two per person, as a loaded gallery of `storage` holds them (PCA: a random
    orthonormal projection, which costs what a fitted one does)."""
    from facegate.edge.gallery.int8_scoring import quantize_rows
    from facegate.edge.gallery.projection import Projection
    from facegate.edge.gallery.records import Gallery, Person
    dtype, dims = parse_storage(storage)
    g = Gallery(binding, dtype)
    if dims:
        q, _ = np.linalg.qr(rng.normal(size=(binding.dim, dims)))
        g.projection = Projection(np.zeros(binding.dim, np.float32), q.T.astype(np.float32), binding.sha256,
                                  {"1e-3": 0.5})
    people = n // 2
    g.person_order = [f"{i:012x}" for i in range(people)]
    g.people = {pid: Person(pid, f"person {pid}") for pid in g.person_order}
    v = rng.normal(size=(n, g.template_dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    if dtype == "float16":
        v = v.astype(np.float16).astype(np.float32)
    elif dtype == "int8":
        codes, scales = quantize_rows(v)
        v = codes * scales[:, None]
    g.templates = v
    g.owners = np.repeat(np.arange(people), 2)
    return g


def bench_gallery(dim: int = 128, sizes=(1_000, 10_000, 100_000), repeats: int = 50, batch: int = 16,
                  storages=STORAGES, progress: bool = True) -> dict:
    """1:N at each size and template storage (one probe, and a batch of `batch` probes in one matrix
    product; int8 galleries rank with the integer product), then file size, open time and enrol
    throughput on real encrypted files."""
    from facegate.edge.gallery import GalleryStore, KeySource, Matcher, ModelBinding
    from facegate.edge.gallery.fileformat import template_bytes

    rng = np.random.default_rng(0)
    binding = ModelBinding("bench", "00" * 32, dim)
    out: dict = {"identify_ms": {}, "identify_p90_ms": {}, "identify_batch_ms": {}, "matcher_build_s": {},
                 "template_mb": {}, "batch": batch, "repeats": repeats, "dim": dim, "storages": list(storages)}
    for storage in storages:
        parse_storage(storage)              # a mistyped storage fails before minutes of timing, not after
        for key in ("identify_ms", "identify_p90_ms", "identify_batch_ms", "matcher_build_s", "template_mb"):
            out[key][storage] = {}
    for n in tqdm(sizes, desc="bench gallery", unit="size", disable=not progress):
        for storage in storages:
            g = _gallery(binding, n, storage, rng)
            t0 = time.perf_counter()
            m = Matcher(g, 0.5)
            out["matcher_build_s"][storage][str(n)] = round(time.perf_counter() - t0, 3)
            if m.int8_kernel:
                out["int8_kernel"] = m.int8_kernel
            # the probe is an embedding of the model: a PCA gallery projects it on every call
            probe = rng.normal(size=binding.dim).astype(np.float32) if g.projection is not None else g.templates[n // 3]
            reps = repeats if n < 1_000_000 else max(5, repeats // 5)
            spread = spread_ms(sample_seconds(lambda: m.identify(probe, top_k=5), reps))
            out["identify_ms"][storage][str(n)] = spread["median_ms"]
            out["identify_p90_ms"][storage][str(n)] = spread["p90_ms"]
            probes = (rng.normal(size=(batch, binding.dim)).astype(np.float32) if g.projection is not None
                      else g.templates[rng.integers(0, n, size=batch)])
            batched = spread_ms(sample_seconds(lambda: m.identify_many(probes, top_k=5), max(5, reps // 5)))
            out["identify_batch_ms"][storage][str(n)] = batched["median_ms"]
            out["template_mb"][storage][str(n)] = round(template_bytes(g.template_dtype, n, g.template_dim) / 1e6, 2)
            m = g = None        # free the 1M-template copies before the next storage is built
    out["file_mb_10k_people"], out["open_ms_10k_people"] = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        key = KeySource("raw", secrets.token_bytes(32))
        for storage in storages:
            store = GalleryStore(Path(tmp) / f"g-{storage}.fgg", key)
            store.save(_gallery(binding, 20_000, storage, rng))
            out["file_mb_10k_people"][storage] = round(store.path.stat().st_size / 1e6, 2)
            out["open_ms_10k_people"][storage] = median_ms(lambda: GalleryStore(store.path, key).load(), 5)
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
