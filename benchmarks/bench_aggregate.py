"""Windowed percentiles and means: metricskit against pandas, DuckDB and hand-written numpy.

All contenders get the same samples (default 10,000,000 over one day, 1-minute windows)
and compute p50/p95/p99 + mean + count per window; each is timed best-of-N in this one
process and compared with metricskit. Then sum/mean/count alone against a bare
``np.add.reduceat``. ``--smoke`` runs a tiny size in a few seconds.

    python benchmarks/bench_aggregate.py [--smoke] [--samples N] [--repeat R]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from anchors import ANCHOR_MISSING
from metricskit.query import aggregate as agg

QS = [0.5, 0.95, 0.99]
DAY_NS = 86_400 * 1_000_000_000
STEP_NS = 60 * 1_000_000_000


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, in ms, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), out


def metricskit_all(ts: np.ndarray, vals: np.ndarray) -> np.ndarray:
    windows = agg.tumbling_windows(ts, vals, STEP_NS)
    stats = agg.window_stats(windows, ["mean", "count"])
    return np.column_stack([agg.window_quantiles(windows, QS), stats["mean"], stats["count"]])


def pandas_all(series: pd.Series) -> np.ndarray:
    resampled = series.resample("1min")
    q = resampled.quantile(QS).unstack()
    return np.column_stack([q.to_numpy(), resampled.mean().to_numpy(), resampled.count()])


def duckdb_all(con: Any) -> np.ndarray:
    return np.asarray(
        con.execute(
            "SELECT quantile_cont(v, [0.5, 0.95, 0.99]), avg(v), count(v) FROM frame "
            "GROUP BY t ORDER BY t"
        ).fetchall(),
        dtype=object,
    )


def loop_percentile(ts: np.ndarray, vals: np.ndarray) -> np.ndarray:
    bounds = np.searchsorted(ts, np.arange(0, DAY_NS + 1, STEP_NS))
    return np.array(
        [
            np.percentile(vals[a:b], [50, 95, 99]) if b > a else [np.nan] * 3
            for a, b in itertools.pairwise(bounds)
        ]
    )


def loop_sort(ts: np.ndarray, vals: np.ndarray) -> np.ndarray:
    bounds = np.searchsorted(ts, np.arange(0, DAY_NS + 1, STEP_NS))
    q = np.array(QS)
    out = np.full((bounds.shape[0] - 1, 3), np.nan)
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if b == a:
            continue
        s = np.sort(vals[a:b])
        rank = q * (b - a - 1)
        lo = np.floor(rank).astype(np.intp)
        hi = np.minimum(lo + 1, b - a - 1)
        out[i] = s[lo] + (s[hi] - s[lo]) * (rank - lo)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = 20_000 if args.smoke else args.samples
    repeat = 2 if args.smoke else args.repeat
    rng = np.random.default_rng(42)
    ts = np.sort(rng.integers(0, DAY_NS, n)).astype(np.int64)
    vals = np.round(rng.normal(100, 15, n), 2)
    print(f"{n:,} samples over one day, 1-minute windows, best of {repeat} (2-core machine,")
    print("shared: absolute times vary between runs, ratios from the same run are what count)")
    print("\np50/p95/p99 + mean + count per window:")
    mk_ms, mk = best(lambda: metricskit_all(ts, vals), repeat)
    # The anchors get their inputs ready-made (an indexed pandas Series, a DuckDB table
    # with the minute column), so only the aggregation is timed.
    indexed = pd.Series(vals, index=pd.to_datetime(ts, utc=True))
    contenders: list[tuple[str, Callable[[], Any]]] = [
        ("pandas resample().quantile + mean + count", lambda: pandas_all(indexed)),
        ("loop of np.percentile per window", lambda: loop_percentile(ts, vals)),
        ("loop: np.sort each window + interpolate", lambda: loop_sort(ts, vals)),
    ]
    try:
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads TO 2")
        frame = pd.DataFrame({"t": ts // STEP_NS, "v": vals})
        con.register("frame", frame)
        contenders.insert(
            1, ("DuckDB quantile_cont GROUP BY minute, 2 threads", lambda: duckdb_all(con))
        )
    except ImportError as exc:
        print(f"{ANCHOR_MISSING} DuckDB ({exc}); pip install duckdb")
    print(f"  {'metricskit':48s} {mk_ms:9.1f} ms")
    for name, fn in contenders:
        ms, out = best(fn, repeat)
        if name.startswith("pandas"):
            np.testing.assert_allclose(out, mk, rtol=1e-9, equal_nan=True)
        print(f"  {name:48s} {ms:9.1f} ms   ratio {ms / mk_ms:5.2f}x (anchor / metricskit)")
    print("\nsum + mean + count per window (no percentile):")
    windows = agg.tumbling_windows(ts, vals, STEP_NS)
    bounds = windows.starts
    reduce_ms, _ = best(lambda: np.add.reduceat(vals, bounds), repeat)
    mean_ms, _ = best(
        lambda: agg.window_stats(agg.tumbling_windows(ts, vals, STEP_NS), ["sum", "mean", "count"]),
        repeat,
    )
    print(f"  {'metricskit (windows + stats, NaN-safe)':48s} {mean_ms:9.1f} ms")
    print(
        f"  {'np.add.reduceat alone (bounds precomputed)':48s} {reduce_ms:9.1f} ms"
        f"   ratio {reduce_ms / mean_ms:5.2f}x (anchor / metricskit)"
    )


if __name__ == "__main__":
    main()
