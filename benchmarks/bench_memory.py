"""Bytes held per sample by the memory:// backend, against the bare int64 + float64 arrays.

Both sides hold the reference dataset's shape (1,000 series x 10,000 points; smoke: 50 x
1,000): the anchor as one int64 timestamp array and one float64 value array per series
(16 bytes a sample, the floor for these dtypes), metricskit as a ``memory://`` store fed
the same arrays. Memory is measured with tracemalloc (every byte Python and numpy
allocate and keep), not with the store's own accounting; ``stats()["bytes"]`` is printed
beside it. Goal: <= 17 bytes per sample.

    python benchmarks/bench_memory.py           # 10,000,000 samples
    python benchmarks/bench_memory.py --smoke
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable

import numpy as np

import metricskit as mk
from metricskit.model import Series, SeriesKey

T0_NS = 1_795_046_400 * 10**9


def held_bytes(build: Callable[[], object]) -> tuple[int, object]:
    """Bytes still allocated after ``build()`` returned (what the result holds)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    n_series, n_points = (50, 1_000) if args.smoke else (1_000, 10_000)
    n = n_series * n_points
    ts = T0_NS + np.arange(n_points, dtype=np.int64) * 10 * 10**9
    rng = np.random.default_rng(42)
    keys = [
        SeriesKey.of("bench_gauge", {"series": f"g{i:04d}", "x": f"group{i % 10}", "job": "bench"})
        for i in range(n_series)
    ]

    def anchor() -> object:
        return [(ts.copy(), rng.normal(size=n_points)) for _ in range(n_series)]

    def ours() -> object:
        store = mk.open_store("memory://")
        for key in keys:
            # one batch per series per 1,000 points, as a recorder flushing every 1,000 would
            for lo in range(0, n_points, 1_000):
                chunk = slice(lo, lo + 1_000)
                store.write([Series(key, ts[chunk], rng.normal(size=len(ts[chunk])))])
        store.stats()  # merges pending chunks, as any read does
        return store

    anchor_bytes, _kept_anchor = held_bytes(anchor)
    ours_bytes, store = held_bytes(ours)
    assert isinstance(store, mk.Store)
    assert store.stats()["samples"] == n
    print(f"samples: {n:,} in {n_series:,} series")
    print(f"anchor (bare int64 + float64 arrays): {anchor_bytes / n:6.2f} bytes/sample")
    print(
        f"metricskit memory:// (tracemalloc):   {ours_bytes / n:6.2f} bytes/sample "
        f"(its own stats(): {store.stats()['bytes'] / n:.2f})"
    )
    print(f"ratio metricskit/anchor: {ours_bytes / anchor_bytes:.3f}x (goal: <= 17 bytes/sample)")


if __name__ == "__main__":
    main()
