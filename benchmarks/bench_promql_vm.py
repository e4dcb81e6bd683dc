"""PromQL range queries: metricskit's memory and SQLite stores against VictoriaMetrics.

The issue's two queries, over the whole reference dataset at a 60 s step:

    sum by (x) (rate(bench_counter_total[5m]))                                  500 counters
    histogram_quantile(0.99, sum by (le) (rate(bench_latency_seconds_bucket[5m])))  10 x 12 buckets

The reference dataset (``dataset.py``: gauges and counters with labels ``series``, ``x``,
``job``) plus a classic histogram family, ``bench_latency_seconds_bucket{x, le}``: 10
groups (``x``) of 12 cumulative bucket counters (``le`` 0.005 ... +Inf) at the dataset's
timestamps, from a seeded numpy generator.

In the same run, on the same samples: VictoriaMetrics started here on 127.0.0.1
(``anchors.py``: ``-retentionPeriod=100y``, ``-search.disableCache``, data through
``/api/v1/import``) answering ``/api/v1/query_range`` over HTTP (``nocache=1``), timed from
this process and so including HTTP and JSON; metricskit's ``store.promql_range`` on a
``memory://`` and a ``sqlite://`` store, timed to the pandas frame. The SQLite file is
queried as opened by default (its read cache keeps the decoded samples between queries,
as VictoriaMetrics keeps its caches) and with ``read_cache_mb=0`` (every query decodes
every block). Each is the median and best of ``--repeat`` runs after a warm-up; the ratios
are VictoriaMetrics / metricskit (above 1: metricskit is faster).

The answers are compared: same series, same steps, and values close: the median relative
difference (steps whose window lies inside the data) within ``--tolerance``, else exit
status 1. Close, not equal: VictoriaMetrics' ``rate`` divides the increase since the sample
before the window by the time since it, Prometheus' (metricskit's) extrapolates the
increase inside the window to its edges; the largest difference is printed too.

    python benchmarks/bench_promql_vm.py           # 1,000 series x 10,000 points + 120 buckets
    python benchmarks/bench_promql_vm.py --smoke   # 20 series x 500 points + 24 buckets
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from math import inf
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchors import (
    ANCHOR_MISSING,
    Server,
    ServerNotAvailable,
    query_range,
    timed_queries,
    victoriametrics_holding,
    vm_import,
)
from dataset import STEP_S, T0, Dataset, arrays
from metricskit.model import Series
from metricskit.store import Store, open_store

HISTOGRAM = "bench_latency_seconds_bucket"
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
QUERIES = {
    "rate": "sum by (x) (rate(bench_counter_total[5m]))",
    "histogram": f"histogram_quantile(0.99, sum by (le) (rate({HISTOGRAM}[5m])))",
}
STEP = 60
SETTLED_S = 300  # from here on every 5m window lies inside the data


def histogram(data: Dataset, groups: int, seed: int = 42) -> Dataset:
    """Cumulative bucket counters per group ``x``, at the dataset's timestamps."""
    rng = np.random.default_rng(seed)
    n_points = data.timestamps_ns.shape[0]
    finite = np.array([float(b) for b in BOUNDS[:-1]])
    names, labels, rows = [], [], []
    for g in range(groups):
        # observations ~ lognormal around 50 ms..250 ms; Poisson arrivals per scrape
        cdf = _lognormal_cdf(finite, median=0.05 * (1 + g % 5), sigma=1.0)
        probs = np.diff(np.concatenate(([0.0], cdf, [1.0])))
        arrivals = rng.poisson(20 + 5 * g, n_points)
        per_bucket = rng.multinomial(arrivals, probs)  # (points, buckets)
        cumulative = np.cumsum(np.cumsum(per_bucket, axis=1), axis=0).T.astype(np.float64)
        for le, values in zip(BOUNDS, cumulative, strict=True):
            names.append(HISTOGRAM)
            labels.append({"x": f"group{g}", "le": le, "job": "bench"})
            rows.append(values)
    return Dataset(names, labels, np.array(rows), data.timestamps_ns)


def _lognormal_cdf(x: np.ndarray, median: float, sigma: float) -> np.ndarray:
    from math import erf, log, sqrt

    return np.array([0.5 * (1 + erf(log(v / median) / (sigma * sqrt(2)))) for v in x])


def batch_of(*datasets: Dataset) -> list[Series]:
    """Every series of the datasets as one write batch."""
    out: list[Series] = []
    for d in datasets:
        out.extend(d.batch())  # type: ignore[arg-type]
    return out


def as_rows(frame: Any, by: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label value: (timestamps_s, values)}`` of a promql_range frame."""
    out = {}
    for s in frame.attrs["series"]:
        key = s.tags.get(by, "") if by else ""
        out[key] = (s.timestamps // 1_000_000_000, np.asarray(s.values))
    return out


def vm_rows(result: list[dict[str, Any]], by: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same shape from VictoriaMetrics' JSON result."""
    out = {}
    for r in result:
        ts = np.array([int(t) for t, _ in r["values"]], dtype=np.int64)
        vals = np.array([float(v) for _, v in r["values"]])
        out[r["metric"].get(by, "") if by else ""] = (ts, vals)
    return out


def differences(
    ours: dict[str, tuple[np.ndarray, np.ndarray]],
    theirs: dict[str, tuple[np.ndarray, np.ndarray]],
    settled_s: int,
) -> tuple[float, float, str]:
    """Median and largest relative difference at the common steps from ``settled_s`` on.

    Earlier windows reach before the first sample, where the two ``rate``s estimate
    differently by design. Missing series or steps count as an infinite difference.
    """
    if ours.keys() != theirs.keys():
        return inf, inf, f"series differ: {sorted(ours)} vs {sorted(theirs)}"
    rels, steps_ours, steps_both = [], 0, 0
    for key, (ts, vals) in ours.items():
        vts, vvals = theirs[key]
        common, i, j = np.intersect1d(ts, vts, return_indices=True)
        steps_ours += ts.shape[0]
        steps_both += common.shape[0]
        late = common >= settled_s
        a, b = vals[i][late], vvals[j][late]
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(all="ignore"):
            rels.append(np.where(scale > 0, np.abs(a - b) / scale, 0.0))
    note = f"{steps_both} of {steps_ours} steps in common"
    rel = np.concatenate(rels) if rels else np.empty(0)
    if steps_both < steps_ours or not rel.size:
        return inf, inf, note
    return float(np.median(rel)), float(rel.max()), note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tolerance", type=float, default=0.05, help="on the median difference")
    ap.add_argument("--cache-dir", default=None, help="cache the generated dataset as .npy")
    args = ap.parse_args()
    n_series, n_points, groups = (20, 500, 2) if args.smoke else (args.series, args.points, 10)
    repeat = 3 if args.smoke else args.repeat
    data = arrays(n_series, n_points, cache_dir=args.cache_dir)
    buckets = histogram(data, groups)
    start, end = T0, T0 + (n_points - 1) * STEP_S
    samples = data.n_samples + buckets.n_samples
    print(
        f"{samples:,} samples ({n_series} series x {n_points} points + {len(buckets.names)} "
        f"buckets); range {end - start} s, step {STEP} s; median (best) of {repeat} runs "
        "after a warm-up"
    )
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        stores = load_stores(Path(tmp), batch_of(data, buckets))
        try:
            with victoriametrics_holding(data, Path(tmp) / "victoriametrics") as vm:
                vm_import(vm, buckets)
                for key, promql in QUERIES.items():
                    failed |= not compare(promql, "x" if key == "rate" else "", stores, vm, args,
                                          (start, end, repeat))  # fmt: skip
        except ServerNotAvailable as exc:
            print(f"{ANCHOR_MISSING} {exc}")
        finally:
            for store in stores.values():
                store.close()
    return 1 if failed else 0


def load_stores(tmp: Path, batch: list[Series]) -> dict[str, Store]:
    """The dataset in a memory:// store and a sqlite:// file, opened twice: as it comes
    (decoded samples kept between queries) and without that cache (decoding every time)."""
    url = f"sqlite:///{tmp}/bench.db"
    memory, sqlite = open_store("memory://"), open_store(url)
    for store in (memory, sqlite):
        store.write(batch)
        store.flush()
    uncached = open_store(url, read_cache_mb=0)
    return {"memory": memory, "SQLite": sqlite, "SQLite, no read cache": uncached}


def compare(
    promql: str,
    by: str,
    stores: dict[str, Store],
    vm: Server,
    args: argparse.Namespace,
    window: tuple[int, int, int],
) -> bool:
    """Time ``promql`` on VictoriaMetrics and each store, print ratios; True if they agree."""
    start, end, repeat = window
    v_median, v_best, result = timed_queries(
        lambda: query_range(vm, promql, start, end, STEP), repeat
    )
    points = sum(len(r["values"]) for r in result)
    print(f"\n{promql}\n  {'VictoriaMetrics (HTTP)':33s} {v_median:9.2f} ms ({v_best:.2f} best), "
          f"{points} points")  # fmt: skip
    agree = True
    for name, store in stores.items():
        run: Callable[[], Any] = lambda s=store: s.promql_range(promql, start, end, STEP)  # noqa: E731
        median, best, frame = timed_queries(run, repeat)
        typical, worst, note = differences(
            as_rows(frame, by), vm_rows(result, by), start + SETTLED_S
        )
        ok = typical <= args.tolerance
        agree &= ok
        print(
            f"  {'metricskit ' + name:33s} {median:9.2f} ms ({best:.2f} best), {len(frame)} "
            f"points; ratio {v_median / median:6.2f}x median, {v_best / best:6.2f}x best "
            f"(VictoriaMetrics / metricskit)\n  {'':33s} values: relative difference "
            f"{typical:.1e} median, {worst:.1e} max ({note})"
            + ("" if ok else f" MEDIAN ABOVE TOLERANCE {args.tolerance}")
        )
    return agree


if __name__ == "__main__":
    raise SystemExit(main())
