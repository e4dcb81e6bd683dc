"""/metrics scrape time against history length: it must not grow with samples per series.

For each backend and each history length N, a fresh store gets 10 gauge series of N
samples each and 10 request-duration histogram series of N observations each (recorded
through a Recorder, which keeps the histogram totals). The figure is the best wall time of
``exposition.generate(store)`` over several scrapes. The anchor is the shortest history:
the ratio ``scrape(N) / scrape(N_min)`` must stay within 1.5x (issue 13); before this
change the histogram was re-binned from every stored observation at each scrape, so the
ratio grew with N.

    python benchmarks/bench_scrape.py                      # 10k, 100k, 1M samples per series
    python benchmarks/bench_scrape.py --backends memory    # one backend
    python benchmarks/bench_scrape.py --smoke              # 1k and 10k, for CI
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.server.exposition import generate

T0 = 1_732_752_000
SERIES = 10
URLS = {
    "memory": "memory://",
    "sqlite": "sqlite:///{tmp}/m.db",
    "parquet": "parquet:///{tmp}/pq",
}


def fill(store: mk.Store, n: int) -> None:
    """10 gauges and 10 histogram series of ``n`` samples each."""
    rng = np.random.default_rng(0)
    ts_ns = (T0 + np.arange(n, dtype=np.int64)) * 10**9
    for i in range(SERIES):
        key = SeriesKey.of("app.bench.gauge", {"id": str(i)})
        store.write([Series(key, ts_ns, rng.random(n))])
    with mk.Recorder(store) as rec:
        for i in range(SERIES):
            rec.record_many(
                "http.request.duration_seconds",
                rng.exponential(0.3, n),
                T0 + np.arange(n, dtype=np.float64),
                {"endpoint": f"/e{i}", "status": "200"},
            )


def best_scrape(store: mk.Store, repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        body = generate(store)
        best = min(best, time.perf_counter() - start)
        size = len(body)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1k and 10k samples, for CI")
    parser.add_argument("--backends", default="memory,sqlite,parquet")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.smoke else (10_000, 100_000, 1_000_000)
    repeat = 3 if args.smoke else args.repeat
    for backend in args.backends.split(","):
        times: dict[int, float] = {}
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                store = mk.open_store(URLS[backend].format(tmp=tmp))
                fill(store, n)
                times[n], size = best_scrape(store, repeat)
                store.close()
            print(
                f"{backend:8s} {SERIES}+{SERIES} series x {n:>9,} samples: "
                f"scrape {times[n] * 1e3:8.2f} ms ({size:,} bytes)",
                flush=True,
            )
        base = times[sizes[0]]
        for n in sizes[1:]:
            ratio = times[n] / base
            verdict = "OK" if ratio <= 1.5 else "GROWS"
            print(
                f"{backend:8s} ratio scrape({n:,}) / scrape({sizes[0]:,}) = {ratio:5.2f}x  "
                f"(goal <= 1.5x) {verdict}",
                flush=True,
            )


if __name__ == "__main__":
    main()
