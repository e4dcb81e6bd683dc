"""``Store.latest()`` over 10 series as their history grows: 10k, 100k, 1M samples each.

``Store.latest`` (behind ``/metrics``, ``metricskit metrics`` and the live screen) must cost
the same however long the history is: each backend answers ``last()`` from the newest data
(Parquet: the files' footer index; memory: one binary search). For each history length the
store the URL names is filled with 10 gauges sampled every 10 s, then ``latest()`` is timed
(best of ``--repeat``), with the ``/metrics`` body (``exposition.generate``) and what
``metricskit metrics`` reads (``cli._latest_by_category``); the anchor is the shortest
history, and the ratio of the longest to it is printed (goal: within 1.5x).

    python benchmarks/bench_latest.py                                # parquet:// in a temp dir
    python benchmarks/bench_latest.py --url sqlite:////tmp/latest.db # any store URL
    python benchmarks/bench_latest.py --smoke                        # tiny, for CI
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from metricskit.cli.commands import _latest_by_category
from metricskit.model import Series, SeriesKey
from metricskit.server.exposition import generate
from metricskit.store import open_store

N_SERIES = 10
STEP_NS = 10 * 10**9
T0 = 1_795_046_400 * 10**9


def batch(points: int, offset: int, count: int) -> list[Series]:
    ts = T0 + (offset + np.arange(count, dtype=np.int64)) * STEP_NS
    rng = np.random.default_rng(offset)
    return [
        Series(
            SeriesKey.of("bench.latest.gauge", {"series": f"s{i}", "job": "bench"}),
            ts,
            np.round(rng.uniform(0, 100, count), 2),
        )
        for i in range(N_SERIES)
    ]


def best_ms(fn: object, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return min(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    ap.add_argument("--url", default=None, help="store URL template; {n} is the history length")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    sizes = [1_000, 10_000] if args.smoke else [10_000, 100_000, 1_000_000]
    repeat = args.repeat or (5 if args.smoke else 30)

    results: list[tuple[int, float, float]] = []
    paths: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-latest-") as tmp:
        for n in sizes:
            url = (args.url or f"parquet://{tmp}/store-{{n}}").format(n=n)
            store = open_store(url)
            store.delete()
            t = time.perf_counter()
            chunk = 200_000
            for offset in range(0, n, chunk):
                store.write(batch(n, offset, min(chunk, n - offset)))
                store.flush()
            filled = time.perf_counter() - t
            if store.backend.capabilities.persistent:
                # a fresh handle, as `metricskit metrics` or a restarted service has
                store.close()
                store = open_store(url)
            cold = best_ms(store.latest, 1)
            found = store.latest()
            assert len(found) == N_SERIES, found
            assert all(ts == T0 + (n - 1) * STEP_NS for _, ts, _ in found), found
            warm = best_ms(store.latest, repeat)
            exposition = best_ms(lambda s=store: generate(s), repeat)  # the /metrics body
            by_category = best_ms(lambda s=store: _latest_by_category(s), repeat)  # CLI
            store.close()
            results.append((n, cold, warm))
            paths.append((exposition, by_category))
            print(
                f"{n:>9,} samples/series: filled in {filled:5.1f} s; "
                f"latest() first call {cold:7.2f} ms, then best {warm:7.3f} ms"
            )
    base = results[0][2]
    print(f"\nStore.latest() over {N_SERIES} series, best of {repeat} (anchor: {sizes[0]:,}):")
    for (n, _, warm), (expo, cli) in zip(results, paths, strict=True):
        print(
            f"  {n:>9,} samples/series  {warm:8.3f} ms  ratio {warm / base:5.2f}x"
            f"   /metrics body {expo:7.3f} ms ({expo / paths[0][0]:4.2f}x)"
            f"   `metricskit metrics` {cli:7.3f} ms ({cli / paths[0][1]:4.2f}x)"
        )
    print(f"  ratio {sizes[-1]:,} / {sizes[0]:,}: {results[-1][2] / base:.2f}x  (goal <= 1.5x)")


if __name__ == "__main__":
    main()
