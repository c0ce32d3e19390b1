"""The one timing helper behind every speed number (benchmarks, export checks, evaluations).

Each call is timed on its own with `time.perf_counter` after warm-up calls (allocations, XNNPACK weight
packing), and figures are reported with their spread, so a number in docs/benchmarks.md says how much
it moves between calls.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def sample_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall time of each of `repeats` calls of `fn` in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` in milliseconds over `repeats` calls, after one warm-up call."""
    return round(1000 * statistics.median(sample_seconds(fn, repeats)), 2)


def spread_ms(seconds: list[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile and mean of timings given in seconds, in milliseconds."""
    ms = sorted(1000 * s for s in seconds)
    if len(ms) == 1:
        return {"median_ms": round(ms[0], 2), "p10_ms": round(ms[0], 2), "p90_ms": round(ms[0], 2),
                "mean_ms": round(ms[0], 2)}
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    return {"median_ms": round(statistics.median(ms), 2), "p10_ms": round(deciles[0], 2),
            "p90_ms": round(deciles[-1], 2), "mean_ms": round(statistics.fmean(ms), 2)}
