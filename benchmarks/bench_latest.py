"""``Store.latest()`` over 10 series as their history grows: 10k, 100k, 1M samples each.

``Store.latest`` (behind ``/metrics``, ``metricskit metrics`` and the live screen) must cost
the same however long the history is: each backend answers ``last()`` from the newest data
(Parquet: the files' footer index; memory: one binary search). For each history length the
store the URL names is filled with 10 gauges sampled every 10 s, then ``latest()`` is timed
(best of ``--repeat``), with the ``/metrics`` body (``exposition.generate``) and what
``metricskit metrics`` reads (``cli._latest_by_category``); the anchor is the shortest
history, and the ratio of the longest to it is printed (goal: within 1.5x).

A persistent store is also opened by ``--fresh`` new processes (as ``metricskit metrics``
or a restarted service is), each timing its *first* ``latest()``; for ``parquet://`` the
same is timed once more without the root key snapshot (``_keys.json``), i.e. listing one
directory per day of history as before the snapshot existed (the same-run anchor).

    python benchmarks/bench_latest.py                                # parquet:// in a temp dir
    python benchmarks/bench_latest.py --url sqlite:////tmp/latest.db # any store URL
    python benchmarks/bench_latest.py --smoke                        # tiny, for CI
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


_FIRST_CALL = """
import sys, time
from metricskit.store import open_store
store = open_store(sys.argv[1])
t = time.perf_counter()
found = store.latest()
print((time.perf_counter() - t) * 1e3, len(found))
"""


def fresh_process_ms(url: str, runs: int) -> float:
    """The best first ``latest()`` of ``runs`` new processes opening ``url``."""
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL, url],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            capture_output=True,
            text=True,
            check=True,
        )
        ms, found = done.stdout.split()
        assert int(found) == N_SERIES, done.stdout
        out.append(float(ms))
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    ap.add_argument("--url", default=None, help="store URL template; {n} is the history length")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--fresh", type=int, default=None, help="new processes timed (best)")
    args = ap.parse_args()
    fresh = args.fresh or (2 if args.smoke else 5)
    sizes = [1_000, 10_000] if args.smoke else [10_000, 100_000, 1_000_000]
    repeat = args.repeat or (5 if args.smoke else 30)

    results: list[tuple[int, float, float]] = []
    paths: list[tuple[float, float]] = []
    firsts: list[tuple[float, float | None]] = []
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
            first = no_snapshot = None
            if store.backend.capabilities.persistent:
                first = fresh_process_ms(url, fresh)
                snapshot = Path(getattr(store.backend, "root", "")) / "_keys.json"
                if snapshot.is_file():
                    snapshot.unlink()
                    no_snapshot = fresh_process_ms(url, fresh)
                firsts.append((first, no_snapshot))
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
    if firsts:
        print(f"\nfirst latest() in a new process, best of {fresh} (anchor: {sizes[0]:,}):")
        for (n, *_), (first, listing) in zip(results, firsts, strict=True):
            line = f"  {n:>9,} samples/series  {first:8.2f} ms  ratio {first / firsts[0][0]:5.2f}x"
            if listing is not None:
                line += f"   without the key snapshot {listing:8.2f} ms ({listing / first:4.1f}x)"
            print(line)
        print(
            f"  ratio {sizes[-1]:,} / {sizes[0]:,}: {firsts[-1][0] / firsts[0][0]:.2f}x"
            "  (goal <= 1.5x)"
        )


if __name__ == "__main__":
    main()
