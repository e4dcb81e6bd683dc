"""PromQL range functions: ``f(x[window])`` evaluated on a grid of times.

Built on the window kernels of :mod:`metricskit.query.aggregate` (which never imports this module):

- :func:`sliding_windows`: one window ``(t - window, t]`` per evaluation time ``t`` on a
  ``step`` grid, as a Prometheus 3 / VictoriaMetrics range query evaluates ``f(x[window])``;
- :func:`over_time`: the ``<stat>_over_time`` functions on those windows;
- :func:`extrapolated_rate` (``rate``/``increase``/``delta``) and :func:`deriv`;
- :func:`range_function_many`: one function over many series at once.

``rate``/``increase``/``delta`` are Prometheus' ``extrapolatedRate`` (promql/functions.go,
Prometheus 3): counter resets, extrapolation towards the window edges by at most half
an average sample interval, never below a counter's zero point. ``deriv`` is the
least-squares slope in units per second. NaN samples are dropped before windowing, as
everywhere in :mod:`metricskit.query.aggregate`.

Scraped series usually share one timestamp grid. :func:`range_function_many` finds the
series whose timestamps are identical, searches the window bounds once for all of them and
evaluates ``extrapolatedRate`` on a (series x windows) array: the time terms are computed
once per window, only the value terms per series, and nothing is concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from metricskit.errors import QueryError
from metricskit.query._windows import (
    F64,
    I64,
    IDX,
    Windows,
    contiguous,
    positive_ns,
    reduce_segments,
    series_columns,
)
from metricskit.query.aggregate import window_quantiles, window_stats

__all__ = [
    "OVER_TIME_STATS",
    "RANGE_FUNCTIONS",
    "default_range",
    "deriv",
    "eval_times",
    "extrapolated_rate",
    "over_time",
    "range_function",
    "range_function_many",
    "sliding_windows",
    "sliding_windows_many",
    "window_counts",
]

OVER_TIME_STATS = ("avg", "sum", "count", "min", "max", "quantile", "last", "first", "stddev")
"""The ``<stat>_over_time`` functions :func:`over_time` evaluates."""
RANGE_FUNCTIONS = ("rate", "increase", "delta", "deriv")
"""The rate-like functions :func:`range_function` evaluates."""

_NS_PER_S = 1e9


def eval_times(start_ns: int, end_ns: int, step_ns: int) -> I64:
    """Evaluation times ``start, start + step, ...`` up to and including ``end`` (PromQL)."""
    step = positive_ns(step_ns, "step")
    if end_ns < start_ns:
        return np.empty(0, dtype=np.int64)
    times: I64 = start_ns + np.arange((end_ns - start_ns) // step + 1, dtype=np.int64) * step
    return times


def default_range(timestamps: npt.ArrayLike, step_ns: int) -> tuple[int, int] | None:
    """The step-grid (epoch-aligned) evaluation span covering every sample, or None if empty.

    From the first grid time at or after the first sample to the first at or after the
    last, so every sample lies in some ``(t - window, t]`` when ``window >= step``.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return None
    step = positive_ns(step_ns, "step")
    return -(-int(ts[0]) // step) * step, -(-int(ts[-1]) // step) * step


def sliding_windows(
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    window_ns: int,
    times: npt.ArrayLike,
) -> Windows:
    """One window ``(t - window, t]`` per evaluation time ``t`` (Prometheus 3 selection)."""
    window = positive_ns(window_ns, "window")
    ts, vals = series_columns(timestamps, values)
    at = np.asarray(times, dtype=np.int64)
    starts = np.searchsorted(ts, at - window, "right").astype(np.intp)
    ends = np.searchsorted(ts, at, "right").astype(np.intp)
    return Windows(at, starts, ends, ts, vals)


def window_counts(
    timestamps: npt.ArrayLike, values: npt.ArrayLike, window_ns: int, times: npt.ArrayLike
) -> IDX:
    """The number of non-NaN samples in each ``(t - window, t]``.

    What decides whether ``f(x[window])`` has a value at ``t`` (PromQL: a sample, or no
    series at all): one sample for the ``<stat>_over_time`` functions, two for the
    :data:`RANGE_FUNCTIONS`. The result itself may still be NaN (the mean of +Inf and
    -Inf): a NaN *value*, which Prometheus returns as a sample.
    """
    window = positive_ns(window_ns, "window")
    ts, vals = series_columns(timestamps, values)
    nan = np.isnan(vals)
    if nan.any():
        ts = ts[~nan]
    at = np.asarray(times, dtype=np.int64)
    counts: IDX = (
        np.searchsorted(ts, at, "right") - np.searchsorted(ts, at - window, "right")
    ).astype(np.intp)
    return counts


def sliding_windows_many(
    columns: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], window_ns: int, times: npt.ArrayLike
) -> Windows:
    """:func:`sliding_windows` for many series at once, in one vectorised pass.

    Each series is shifted into its own disjoint time block before concatenation, so one
    search finds every series' windows; window ``i * len(times) + j`` is series ``i`` at
    ``times[j]``, and the windows' ``times`` and ``timestamps`` are in that shifted clock
    (differences between them are all any statistic uses). A span too wide for the shifted
    times to fit in int64 raises QueryError.
    """
    window = positive_ns(window_ns, "window")
    at = np.asarray(times, dtype=np.int64)
    cols = [series_columns(ts, vals) for ts, vals in columns]
    nonempty = [ts for ts, _ in cols if ts.size]
    if at.size == 0 or not nonempty:
        empty = np.zeros(len(cols) * at.size, dtype=np.intp)
        return Windows(np.tile(at, len(cols)), empty, empty, at[:0], np.empty(0), nan_free=True)
    lowest = min(int(at[0]) - window, *(int(ts[0]) for ts in nonempty))
    highest = max(int(at[-1]), *(int(ts[-1]) for ts in nonempty))
    block = highest - lowest + 1
    if block * len(cols) >= 2**62:
        raise QueryError("time range too wide to evaluate these series together")
    shifts = np.arange(len(cols), dtype=np.int64) * block - lowest
    ts_all = np.concatenate([ts + shift for (ts, _), shift in zip(cols, shifts, strict=True)])
    vals_all = np.concatenate([vals for _, vals in cols])
    # Searching each series on its own keeps the binary searches in cache: one search of
    # every needle in the whole concatenation measured 10x slower.
    lengths = np.array([ts.shape[0] for ts, _ in cols], dtype=np.intp)
    base = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    starts = np.empty((len(cols), at.shape[0]), dtype=np.intp)
    ends = np.empty_like(starts)
    for i, (ts, _) in enumerate(cols):
        starts[i] = np.searchsorted(ts, at - window, "right")
        ends[i] = np.searchsorted(ts, at, "right")
    starts += base[:, None]
    ends += base[:, None]
    shifted_at = (at[None, :] + shifts[:, None]).ravel()
    return Windows(shifted_at, starts.ravel(), ends.ravel(), ts_all, vals_all)


def over_time(
    stat: str,
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    window_ns: int,
    times: npt.ArrayLike,
    *,
    q: float | None = None,
    ddof: int = 0,
) -> F64:
    """``<stat>_over_time(x[window])`` at each evaluation time: NaN where the window is empty.

    ``stat`` is one of :data:`OVER_TIME_STATS`; ``quantile`` needs ``q`` in 0..1.
    ``stddev`` uses ``ddof=0`` as Prometheus does. ``count`` is 0, not NaN, when empty.
    """
    if stat not in OVER_TIME_STATS:
        raise QueryError(f"unknown over_time statistic {stat!r}; known: {OVER_TIME_STATS}")
    windows = sliding_windows(timestamps, values, window_ns, times)
    if stat == "quantile":
        if q is None:
            raise QueryError("quantile_over_time needs q (0..1)")
        result: F64 = window_quantiles(windows, [q])[:, 0]
        return result
    name = "mean" if stat == "avg" else stat
    return window_stats(windows, [name], ddof=ddof)[name]


def extrapolated_rate(windows: Windows, window_ns: int, *, is_counter: bool, is_rate: bool) -> F64:
    """Prometheus' ``extrapolatedRate`` for every sliding window (NaN: fewer than 2 samples).

    ``rate`` is ``(is_counter=True, is_rate=True)``, ``increase`` ``(True, False)`` and
    ``delta`` ``(False, False)``. Computed as Prometheus 3 does: the result is the last
    minus the first value (plus, for counters, the value before each drop), stretched to
    the window edges when the first/last sample is within 1.1 average intervals of them,
    else by half an interval, and for counters never back past the zero point.
    """
    windows = windows.without_nan()
    ts, vals = windows.timestamps, windows.values
    n = windows.counts
    ok = n >= 2
    out = np.full(n.shape[0], np.nan)
    if not ok.any():
        return out
    first = windows.starts[ok]
    last = windows.ends[ok] - 1
    v_first = vals[first]
    with np.errstate(invalid="ignore"):  # Inf - Inf is NaN, as in Prometheus
        result = vals[last] - v_first
        if is_counter:
            _add_resets(result, vals, first, last)
    edges = _Edges(windows.times[ok], ts[first], ts[last], n[ok], window_ns)
    out[ok] = edges.apply(result, v_first, is_counter=is_counter, is_rate=is_rate)
    return out


def _add_resets(result: F64, vals: F64, first: IDX, last: IDX) -> None:
    """Add to ``result[w]`` the value before each drop within ``vals[first[w]:last[w] + 1]``.

    One drop at a time, in time order, as Prometheus adds them to ``last - first``: a
    running sum over the whole series instead (a difference of cumulative sums) would let
    samples outside the window leak in, a huge value before it rounding the window's
    small resets away and an +Inf turning every later window into NaN, and in the rule
    engine, which lays a metric's series end to end, one series into the next.
    """
    dropped = vals[1:] < vals[:-1]  # sample j + 1 is below sample j
    if not dropped.any():  # the common case: one comparison pass
        return
    drops = np.flatnonzero(dropped)
    # a drop j counts for a window holding both j and j + 1: first <= j < last
    lo = np.searchsorted(drops, first, "left")
    count = np.searchsorted(drops, last, "left") - lo
    for k in range(int(count.max(initial=0))):
        # windows with more than k drops; usually none past the first pass or two
        sel = np.flatnonzero(count > k)
        result[sel] += vals[drops[lo[sel] + k]]


class _Edges:
    """The time terms of ``extrapolatedRate`` for a set of windows (each with >= 2 samples).

    They depend only on the windows' evaluation times and first/last sample times, so
    series sharing a timestamp grid share them: :meth:`apply` broadcasts them over a
    (series x windows) array of results.
    """

    __slots__ = ("avg_gap", "sampled", "to_end", "to_start", "window_s")

    def __init__(self, t: I64, first_t: I64, last_t: I64, n: IDX, window_ns: int) -> None:
        to_start = (first_t - (t - window_ns)) / _NS_PER_S
        to_end = (t - last_t) / _NS_PER_S
        self.sampled = (last_t - first_t) / _NS_PER_S
        avg_gap = self.sampled / (n - 1)
        threshold = avg_gap * 1.1
        self.to_start = np.where(to_start >= threshold, avg_gap / 2, to_start)
        self.to_end = np.where(to_end >= threshold, avg_gap / 2, to_end)
        self.window_s = window_ns / _NS_PER_S

    def apply(self, result: F64, v_first: F64, *, is_counter: bool, is_rate: bool) -> F64:
        """Extrapolate ``result`` (last - first, resets added) to the window edges.

        The arithmetic is Prometheus' term for term, done in place on one buffer of
        ``result``'s shape (on a 500 x 1,667 array the temporaries cost as much as the
        arithmetic).
        """
        sampled = self.sampled
        with np.errstate(divide="ignore", invalid="ignore"):
            if is_counter:
                # to_start = min(to_start, sampled * v_first / result) where result > 0 and
                # v_first >= 0 (the zero point), else to_start
                factor = np.divide(v_first, result)
                factor *= sampled
                np.minimum(self.to_start, factor, out=factor)
                keep = np.greater(result, 0)
                keep &= np.greater_equal(v_first, 0)
                np.logical_not(keep, out=keep)
                np.copyto(factor, np.broadcast_to(self.to_start, factor.shape), where=keep)
                np.add(sampled, factor, out=factor)
            else:
                factor = sampled + self.to_start
            factor += self.to_end
            factor /= sampled
        if is_rate:
            factor /= self.window_s
        factor = np.multiply(result, factor, out=factor if factor.shape == result.shape else None)
        return factor


def deriv(windows: Windows) -> F64:
    """Least-squares slope (units per second) in each window; NaN with fewer than 2 samples.

    Computed on centred data, which is what Prometheus' Kahan-summed regression
    approximates; a window whose values are all equal has slope 0 (NaN if they are
    infinite, as in Prometheus).
    """
    windows = windows.without_nan()
    flat_v, offsets = contiguous(windows.values, windows.starts, windows.ends)
    flat_t, _ = contiguous(windows.timestamps, windows.starts, windows.ends)
    counts = np.diff(offsets)
    out = np.full(counts.shape[0], np.nan)
    ok = counts >= 2
    if not ok.any():
        return out
    # seconds since each window's first sample keeps x small and exact enough
    t0 = np.repeat(flat_t[offsets[:-1][counts > 0]], counts[counts > 0])
    x = (flat_t - t0) / _NS_PER_S
    safe = np.where(counts > 0, counts, 1)
    mx = np.repeat(reduce_segments(np.add, x, offsets) / safe, counts)
    my = np.repeat(reduce_segments(np.add, flat_v, offsets) / safe, counts)
    dx = x - mx
    with np.errstate(divide="ignore", invalid="ignore"):  # infinite values: NaN
        cov = reduce_segments(np.add, dx * (flat_v - my), offsets)
        var = reduce_segments(np.add, dx * dx, offsets)
        slope = cov / var
    lowest = reduce_segments(np.minimum, flat_v, offsets)
    # all values equal: slope 0, but NaN for a constant +-Inf (Prometheus' linearRegression)
    constant = (lowest == reduce_segments(np.maximum, flat_v, offsets)) & np.isfinite(lowest)
    slope[constant] = 0.0
    out[ok] = slope[ok]
    return out


def range_function(
    fn: str, timestamps: npt.ArrayLike, values: npt.ArrayLike, window_ns: int, times: npt.ArrayLike
) -> F64:
    """``fn(x[window])`` at each evaluation time; ``fn`` is one of :data:`RANGE_FUNCTIONS`."""
    result: F64 = range_function_many(fn, [(timestamps, values)], window_ns, times)[0]
    return result


def range_function_many(
    fn: str,
    columns: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    window_ns: int,
    times: npt.ArrayLike,
    present: npt.NDArray[np.bool_] | None = None,
) -> F64:
    """:func:`range_function` for many series: shape ``(len(columns), len(times))``.

    ``present`` (same shape), when given, is set where a window holds two non-NaN
    samples: where PromQL has a sample (whose value may still be NaN).
    """
    if fn not in RANGE_FUNCTIONS:
        raise QueryError(f"unknown range function {fn!r}; known: {', '.join(RANGE_FUNCTIONS)}")
    window = positive_ns(window_ns, "window")
    at = np.asarray(times, dtype=np.int64)
    cols = [series_columns(ts, vals) for ts, vals in columns]
    out = np.full((len(cols), at.shape[0]), np.nan)
    if not cols or at.size == 0:
        return out
    rest = list(range(len(cols)))
    if fn != "deriv":
        grids, rest = _shared_grids(cols)
        for ts, rows in grids:
            values = [cols[i][1] for i in rows]
            if len(rows) == len(cols):  # one grid for all: write in place
                _grid_rate(ts, values, window, at, fn, out)
            else:
                out[rows] = _grid_rate(ts, values, window, at, fn, out[rows])
            if present is not None:  # NaN-free series: every sample counts
                ends = np.searchsorted(ts, at, "right")
                present[rows] = ends - np.searchsorted(ts, at - window, "right") >= 2
    if present is not None:
        for i in rest:
            present[i] = window_counts(*cols[i], window, at) >= 2
    if rest:
        windows = sliding_windows_many([cols[i] for i in rest], window, at)
        if fn == "deriv":
            flat = deriv(windows)
        else:
            counter, is_rate = fn != "delta", fn == "rate"
            flat = extrapolated_rate(windows, window, is_counter=counter, is_rate=is_rate)
        out[rest] = flat.reshape(len(rest), -1)
    return out


def _shared_grids(cols: Sequence[tuple[I64, F64]]) -> tuple[list[tuple[I64, list[int]]], list[int]]:
    """Group the NaN-free, non-empty series by identical timestamps; the rest are returned apart.

    A series with NaN has windows of its own (NaN samples are dropped before windowing),
    so it goes the general way. Its sum tells: NaN (or +inf meeting -inf) only then.
    """
    by_shape: dict[tuple[int, int, int], list[tuple[I64, list[int]]]] = {}
    rest: list[int] = []
    with np.errstate(invalid="ignore"):  # once: entering it costs more than a small sum
        sums = [np.add.reduce(vals) for _, vals in cols]
    for i, ((ts, _), total) in enumerate(zip(cols, sums, strict=True)):
        if ts.size == 0 or np.isnan(total):
            rest.append(i)
            continue
        candidates = by_shape.setdefault((ts.shape[0], int(ts[0]), int(ts[-1])), [])
        for grid_ts, rows in candidates:
            if grid_ts is ts or _same_memory(grid_ts, ts) or np.array_equal(grid_ts, ts):
                rows.append(i)
                break
        else:
            candidates.append((ts, [i]))
    return [g for groups in by_shape.values() for g in groups], rest


def _same_memory(a: I64, b: I64) -> bool:
    """True if ``a`` and ``b`` are views of the same memory (a store sharing one grid)."""
    return a.strides == b.strides and (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _grid_rate(ts: I64, values: Sequence[F64], window_ns: int, at: I64, fn: str, out: F64) -> F64:
    """``fn`` (rate, increase, delta) of NaN-free series sharing ``ts`` into ``out``.

    ``out`` is (series x times), NaN-filled; windows with fewer than 2 samples stay NaN.
    """
    starts = np.searchsorted(ts, at - window_ns, "right")
    ends = np.searchsorted(ts, at, "right")
    n = ends - starts
    ok = n >= 2
    if not ok.any():
        return out
    first = starts[ok]
    last = ends[ok] - 1
    is_counter = fn != "delta"
    v_first = np.empty((len(values), first.shape[0]))
    result = np.empty_like(v_first)
    take_first, take_last = _gather(first), _gather(last)
    for i, vals in enumerate(values):
        take_first(vals, v_first[i])
        take_last(vals, result[i])
    with np.errstate(invalid="ignore"):  # Inf - Inf is NaN, as in Prometheus
        result -= v_first
        if is_counter:
            # added after the difference, in extrapolated_rate's order: identical results
            for i, vals in enumerate(values):
                _add_resets(result[i], vals, first, last)
    edges = _Edges(at[ok], ts[first], ts[last], n[ok], window_ns)
    out[:, ok] = edges.apply(result, v_first, is_counter=is_counter, is_rate=fn == "rate")
    return out


def _gather(index: IDX) -> Callable[[F64, F64], object]:
    """``fn(values, out)`` copying ``values[index]`` into ``out``.

    On a regular grid the windows' first/last samples are evenly spaced after the first
    few windows (which reach back before the data): that run is a strided slice, which
    copies faster than a gather; only the irregular head is gathered.
    """
    count = index.shape[0]
    steps = np.diff(index)
    irregular = np.flatnonzero(steps != steps[-1]) if count > 1 else np.empty(0, dtype=np.intp)
    head = int(irregular[-1]) + 1 if irregular.size else 0
    step = int(steps[-1]) if count > 1 else 0
    if count - head < 2 or step <= 0:
        return lambda values, out: np.take(values, index, out=out, mode="clip")
    lo = int(index[head])
    hi = lo + step * (count - head - 1) + 1
    head_index = index[:head]

    def gather(values: F64, out: F64) -> None:
        if head:
            out[:head] = values[head_index]  # in range: ends - 1 of non-empty windows
        out[head:] = values[lo:hi:step]

    return gather
