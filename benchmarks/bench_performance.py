"""Request performance summary: 1,000,000 requests over 50 endpoints.

metricskit's ``performance.summarize`` (count, throughput, mean, p50/p75/p90/p95/p99, error
rate and slow requests, overall and per endpoint, from a ``memory://`` store) against the
anchor an analyst would write: a pandas DataFrame of the same requests, ``groupby
("endpoint")`` with ``quantile``, ``mean``, ``count`` and the error share. Both start from
data already in memory (the store's arrays, the DataFrame). Best of several runs.

    python benchmarks/bench_performance.py           # 1,000,000 requests
    python benchmarks/bench_performance.py --smoke   # 20,000, for CI
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.query.performance import summarize

T0 = 1_795_046_400
PCTS = [0.5, 0.75, 0.9, 0.95, 0.99]


def best_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    n, endpoints, repeat = (20_000, 10, 2) if args.smoke else (1_000_000, 50, 5)
    rng = np.random.default_rng(11)
    window_s = 3600
    ts = np.sort(rng.integers(T0 * 10**9, (T0 + window_s) * 10**9, n)).astype(np.int64)
    endpoint = rng.integers(0, endpoints, n)
    status = np.where(rng.random(n) < 0.02, 500, 200)
    durations = rng.lognormal(-2, 0.7, n)

    store = mk.open_store("memory://")
    batch = []
    for e in range(endpoints):
        for code in (200, 500):
            mask = (endpoint == e) & (status == code)
            # a real store keeps one sample per timestamp per series; make them unique
            t = ts[mask] + np.arange(int(mask.sum()), dtype=np.int64) % 1000
            key = SeriesKey.of(
                "http.request.duration_seconds",
                {"endpoint": f"/api/e{e}", "method": "GET", "status": str(code)},
            )
            batch.append(Series(key, np.sort(t), durations[mask]))
    store.write(batch)
    frame = pd.DataFrame(
        {
            "endpoint": pd.Categorical([f"/api/e{e}" for e in endpoint]),
            "status": status,
            "duration": durations,
        }
    )

    def anchor() -> object:
        grouped = frame.groupby("endpoint", observed=True)["duration"]
        per = grouped.quantile(PCTS).unstack()
        per["mean"] = grouped.mean()
        per["count"] = grouped.count()
        per["error_rate"] = (
            (frame["status"] >= 400).groupby(frame["endpoint"], observed=True).mean()
        )
        per["slow"] = (frame["duration"] > 1.0).groupby(frame["endpoint"], observed=True).sum()
        overall = frame["duration"].quantile(PCTS)
        return per, overall

    def ours() -> object:
        return summarize(store, window=window_s + 1, now=T0 + window_s + 1)

    summary = summarize(store, window=window_s + 1, now=T0 + window_s + 1)
    per, _overall = anchor()
    check = summary.endpoints["/api/e3"].percentiles_seconds["p95"]
    assert abs(check - per.loc["/api/e3", 0.95]) < 1e-12, (check, per.loc["/api/e3", 0.95])
    assert summary.overall.count == n

    anchor_s = best_s(anchor, repeat)
    ours_s = best_s(ours, repeat)
    print(f"requests: {n:,} over {endpoints} endpoints (best of {repeat})")
    print(f"pandas groupby quantile/mean/count/error share: {anchor_s * 1e3:8.1f} ms")
    print(f"metricskit performance.summarize:               {ours_s * 1e3:8.1f} ms")
    print(f"ratio metricskit/pandas: {ours_s / anchor_s:.2f}x")


if __name__ == "__main__":
    main()
