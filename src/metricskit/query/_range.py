"""Range-vector functions: ``f(x[range])`` at every evaluation time, on numpy kernels.

rate, increase, delta and deriv are
:func:`metricskit.query.range_functions.range_function_many`; the ``<stat>_over_time``
functions use :func:`metricskit.query.aggregate.window_stats`; irate, idelta, changes,
resets and predict_linear are computed here on the same windows. NaN samples
are skipped, as everywhere in metricskit (docs/aggregation.md).
"""

from __future__ import annotations

import numpy as np

from metricskit.query._values import BOOL, F64, I64, RangeVector, Vector, drop_name
from metricskit.query._windows import Windows, contiguous, reduce_segments
from metricskit.query.aggregate import window_quantiles, window_stats
from metricskit.query.range_functions import RANGE_FUNCTIONS, range_function_many, sliding_windows

__all__ = ["OVER_TIME", "RANGE", "range_call"]

_NS_PER_S = 1e9
OVER_TIME = frozenset(
    {"avg_over_time", "sum_over_time", "count_over_time", "min_over_time", "max_over_time",
     "last_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
     "present_over_time"}
)  # fmt: skip
RANGE = frozenset(
    {*RANGE_FUNCTIONS, *OVER_TIME, "irate", "idelta", "changes", "resets", "predict_linear"}
)


def _last_two(ts: I64, vals: F64, starts: I64, ends: I64, is_rate: bool) -> tuple[F64, BOOL]:
    ok = ends - starts >= 2
    last = np.where(ok, ends - 1, 0)
    prev = np.where(ok, ends - 2, 0)
    out = np.full(ends.shape, np.nan)
    if not ts.size:
        return out, ok
    with np.errstate(all="ignore"):
        diff = vals[last] - vals[prev]
        if is_rate:
            diff = np.where(vals[last] < vals[prev], vals[last], diff)
            diff = diff / ((ts[last] - ts[prev]) / _NS_PER_S)
    out[ok] = diff[ok]
    return out, ok


def _count_pairs(vals: F64, starts: I64, ends: I64, resets: bool) -> F64:
    flags = vals[1:] < vals[:-1] if resets else vals[1:] != vals[:-1]
    cum = np.concatenate(([0], np.cumsum(flags)))
    nonempty = ends > starts
    last = np.where(nonempty, ends - 1, 0)
    first = np.where(nonempty, starts, 0)
    return (cum[last] - cum[first]).astype(np.float64)


def _predict(ts: I64, vals: F64, starts: I64, ends: I64, at: I64, horizon: F64) -> F64:
    flat_v, offsets = contiguous(vals, starts, ends)
    flat_t, _ = contiguous(ts, starts, ends)
    counts = np.diff(offsets)
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    x = (flat_t - at[owner]) / _NS_PER_S  # seconds relative to the evaluation time
    safe = np.where(counts > 0, counts, 1)
    mx = reduce_segments(np.add, x, offsets) / safe
    my = reduce_segments(np.add, flat_v, offsets) / safe
    dx = x - mx[owner]
    with np.errstate(all="ignore"):
        slope = reduce_segments(np.add, dx * (flat_v - my[owner]), offsets) / reduce_segments(
            np.add, dx * dx, offsets
        )
        lowest = reduce_segments(np.minimum, flat_v, offsets)
        constant = lowest == reduce_segments(np.maximum, flat_v, offsets)
        slope = np.where(constant, 0.0, slope)
        intercept = np.where(constant, lowest, my - slope * mx)
        result: F64 = intercept + slope * horizon
    return result


def _spread(windows: Windows, square: bool) -> F64:
    """stddev (or stdvar) per window, exactly 0 where every value is equal.

    A two-pass deviation around a mean that is not exactly representable leaves ~1e-15
    where Prometheus' running (Welford) form gives 0; ``ln`` or ``x > 0`` would show it.
    """
    stats = window_stats(windows, ["stddev", "min", "max"], ddof=0)
    equal = (stats["min"] == stats["max"]) & np.isfinite(stats["min"])  # +-Inf stays NaN
    std = np.where(equal, 0.0, stats["stddev"])
    out: F64 = std * std if square else std
    return out


def range_call(func: str, rv: RangeVector, eval_times: I64, extra: F64 | None = None) -> Vector:
    """``func(rv)`` (``extra``: quantile_over_time's q or predict_linear's horizon)."""
    steps = rv.times.shape[0]
    n = len(rv.samples)
    values = np.full((n, steps), np.nan)
    present = np.zeros((n, steps), dtype=bool)
    if func in RANGE_FUNCTIONS:
        if n:
            values = range_function_many(func, rv.samples, rv.range_ns, rv.times, present)
        samples = []  # done: rate & co. need no windows of their own
    else:
        samples = rv.samples
    for i, (ts, vals) in enumerate(samples):
        windows = sliding_windows(ts, vals, rv.range_ns, rv.times).without_nan()
        counts = windows.counts
        starts, ends = windows.starts, windows.ends
        cts, cvals = windows.timestamps, windows.values
        if func in ("irate", "idelta"):
            values[i], present[i] = _last_two(cts, cvals, starts, ends, func == "irate")
        elif func in ("changes", "resets"):
            present[i] = counts >= 1
            if cvals.size:
                values[i] = _count_pairs(cvals, starts, ends, func == "resets")
        elif func == "predict_linear":
            present[i] = counts >= 2
            assert extra is not None
            if cvals.size:
                values[i] = _predict(cts, cvals, starts, ends, eval_times, extra)
        elif func == "quantile_over_time":
            assert extra is not None
            present[i] = counts >= 1
            q = extra
            if (
                cvals.size
                and np.isfinite(q).all()
                and ((q >= 0) & (q <= 1)).all()
                and len(set(q.tolist())) == 1
            ):
                values[i] = window_quantiles(windows, [float(q[0])])[:, 0]
            else:
                values[i] = _quantiles_per_time(windows, q)
        elif func == "present_over_time":
            present[i] = counts >= 1
            values[i] = 1.0
        else:
            present[i] = counts >= 1
            stat = func.removesuffix("_over_time")
            name = {"avg": "mean", "stdvar": "stddev"}.get(stat, stat)
            if name == "stddev":
                values[i] = _spread(windows, square=stat == "stdvar")
            elif name in ("sum", "mean"):
                # Prometheus' (Kahan) sum starts from +0: a window of -0 sums to +0, not -0
                values[i] = window_stats(windows, [name], ddof=0)[name] + 0.0
            else:
                values[i] = window_stats(windows, [name], ddof=0)[name]
    keep_name = func == "last_over_time"
    labels = list(rv.labels) if keep_name else [drop_name(la) for la in rv.labels]
    return Vector(labels, values, present)


def _quantiles_per_time(windows: Windows, q: F64) -> F64:
    """quantile_over_time with a q that varies over time or leaves 0..1 (+-Inf there)."""
    out = np.full(q.shape, np.nan)
    for j, qj in enumerate(q.tolist()):
        if np.isnan(qj):
            continue
        if qj < 0 or qj > 1:
            out[j] = -np.inf if qj < 0 else np.inf
            continue
        one = Windows(
            windows.times[j : j + 1],
            windows.starts[j : j + 1],
            windows.ends[j : j + 1],
            windows.timestamps,
            windows.values,
            nan_free=True,
        )
        out[j] = window_quantiles(one, [qj])[0, 0]
    return out
