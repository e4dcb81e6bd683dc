"""Numpy kernels for windowed statistics and exact percentiles.

Everything here works on one series' sorted columns (``timestamps`` int64 ns, ``values``
float64) and does no I/O. Two ways to cut a series into windows:

- :func:`tumbling_windows`: fixed ``step`` windows ``[t, t + step)`` aligned to the epoch
  (or to ``origin_ns``), labelled by their start, as ``pandas.DataFrame.resample`` does;
- :func:`~metricskit.query.range_functions.sliding_windows`: one window ``(t - window, t]``
  per evaluation time ``t`` on a ``step`` grid, as a Prometheus 3 / VictoriaMetrics range
  query evaluates ``f(x[window])``. The PromQL range functions live in
  :mod:`metricskit.query.range_functions`, which builds on this module (never the other way
  round).

Rules shared by every statistic:

- NaN samples are dropped before windowing: they are neither used nor counted (pandas'
  rule; Prometheus would propagate them). A window with no sample gives NaN (count 0),
  ``sum`` included (pandas would give 0, PromQL no value).
- Percentiles are exact, with numpy's default linear interpolation (virtual index
  ``(n - 1) * q``), which is also Prometheus' ``quantile_over_time``.
- ``stddev`` takes ``ddof``: :func:`window_stats` defaults to 1 (pandas' ``std()``),
  :func:`over_time` to 0 (Prometheus' ``stddev_over_time``).
- ``rate``/``increase``/``delta``/``deriv``: see :mod:`metricskit.query.range_functions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from metricskit.errors import QueryError
from metricskit.query._windows import (
    F64,
    IDX,
    Windows,
    contiguous,
    positive_ns,
    reduce_segments,
    series_columns,
)

__all__ = [
    "WINDOW_STATS",
    "Windows",
    "segment_quantiles",
    "tumbling_windows",
    "window_quantiles",
    "window_stats",
]

WINDOW_STATS = ("count", "sum", "mean", "min", "max", "stddev", "first", "last")
"""Statistics :func:`window_stats` computes (percentiles come from :func:`window_quantiles`)."""
# Windows up to this many samples are sorted together as rows of a padded 2-D array; longer
# ones one by one with np.partition, which beats a full sort once a window is a few hundred
# samples long (measured: 7,000-sample windows, 3 quantiles: 21 us per partition vs 55 us
# per sort).
_SMALL_WINDOW = 256


def tumbling_windows(
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    step_ns: int,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    origin_ns: int = 0,
) -> Windows:
    """Cut a sorted series into windows ``[t, t + step)`` with ``t = origin + k * step``.

    Samples outside ``[start_ns, end_ns)`` are ignored. The windows run from the one holding
    ``start_ns`` (default: the first sample) to the one holding ``end_ns - 1`` (default: the
    last sample), empty ones included, as ``resample`` does.
    """
    step = positive_ns(step_ns, "step")
    ts, vals = series_columns(timestamps, values)
    lo = 0 if start_ns is None else int(np.searchsorted(ts, start_ns, "left"))
    hi = ts.shape[0] if end_ns is None else int(np.searchsorted(ts, end_ns, "left"))
    ts, vals = ts[lo:hi], vals[lo:hi]
    first = start_ns if start_ns is not None else (int(ts[0]) if ts.size else None)
    last = end_ns - 1 if end_ns is not None else (int(ts[-1]) if ts.size else None)
    if first is None or last is None or last < first:
        empty = np.empty(0, dtype=np.intp)
        return Windows(np.empty(0, dtype=np.int64), empty, empty, ts, vals)
    k0 = (first - origin_ns) // step
    k1 = (last - origin_ns) // step
    times = origin_ns + np.arange(k0, k1 + 1, dtype=np.int64) * step
    # Search the window starts in the samples (not the samples' buckets): a few thousand
    # binary searches instead of a division per sample. The end of the last window may not
    # fit in int64, and every remaining sample belongs to it anyway.
    bounds = np.empty(times.shape[0] + 1, dtype=np.intp)
    bounds[0] = 0
    bounds[1:-1] = np.searchsorted(ts, times[1:], "left")
    bounds[-1] = ts.shape[0]
    return Windows(times, bounds[:-1], bounds[1:], ts, vals)


def _lerp(a: F64, b: F64, g: F64) -> F64:
    """numpy's percentile interpolation, term for term, so results match it bit for bit."""
    diff = b - a
    out: F64 = a + diff * g
    np.subtract(b, diff * (1 - g), out=out, where=g >= 0.5)
    return out


def _check_quantiles(qs: Sequence[float] | npt.ArrayLike) -> F64:
    q = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    if q.ndim != 1 or np.isnan(q).any() or (q < 0).any() or (q > 1).any():
        raise QueryError(f"quantiles must be between 0 and 1, got {q.tolist()}")
    return q


def segment_quantiles(flat: F64, offsets: IDX, qs: Sequence[float] | npt.ArrayLike) -> F64:
    """Exact quantiles ``qs`` (0..1) of each segment ``flat[offsets[i]:offsets[i+1]]``.

    Returns an array of shape ``(segments, len(qs))``; NaN for an empty segment. ``flat``
    must hold no NaN and is not modified.
    """
    q = _check_quantiles(qs)
    counts = np.diff(offsets)
    nseg = counts.shape[0]
    out = np.full((nseg, q.shape[0]), np.nan)
    rank = (counts[:, None] - 1) * q[None, :]  # numpy's virtual index for 'linear'
    lo = np.floor(rank).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(counts[:, None] - 1, 0))
    gamma = rank - lo
    a = np.full_like(out, np.nan)
    b = np.full_like(out, np.nan)
    small = (counts > 0) & (counts <= _SMALL_WINDOW)
    if small.any():
        _small_order_stats(flat, offsets, counts, np.flatnonzero(small), lo, hi, a, b)
    large = np.flatnonzero(counts > _SMALL_WINDOW)
    if large.size:
        _large_order_stats(flat, offsets, counts, large, q, lo, a, b)
    nonempty = counts > 0
    with np.errstate(invalid="ignore"):  # infinities: recomputed below
        out[nonempty] = _lerp(a[nonempty], b[nonempty], gamma[nonempty])
    infinite = nonempty[:, None] & (np.isinf(a) | np.isinf(b))
    if infinite.any():
        # numpy's form subtracts inf from inf (quantile 0.95 of [1, +Inf] would be NaN);
        # Prometheus' a * (1 - g) + b * g is +Inf there, and is the reference
        g = gamma[infinite]
        with np.errstate(invalid="ignore"):  # Inf * 0 is NaN in Prometheus too
            out[infinite] = a[infinite] * (1 - g) + b[infinite] * g
    return out


def _small_order_stats(
    flat: F64, offsets: IDX, counts: IDX, rows: IDX, lo: IDX, hi: IDX, a: F64, b: F64
) -> None:
    """Sort short segments as rows of padded 2-D arrays, one array per power-of-two width.

    Grouping by width keeps the padding under half of each array. Padding is +inf, which
    sorts after every real value (a real +inf ties with it and reads back the same).
    """
    width_class = np.ceil(np.log2(counts[rows])).astype(np.intp)
    for cls in np.unique(width_class).tolist():
        sel = rows[width_class == cls]
        width = 1 << cls
        pos = np.arange(width, dtype=np.intp)
        idx = offsets[sel][:, None] + pos[None, :]
        inside = pos[None, :] < counts[sel][:, None]
        block = np.where(inside, flat[np.minimum(idx, flat.shape[0] - 1)], np.inf)
        block.sort(axis=1)
        r = np.arange(sel.shape[0])[:, None]
        a[sel] = block[r, lo[sel]]
        b[sel] = block[r, hi[sel]]


def _large_order_stats(
    flat: F64, offsets: IDX, counts: IDX, rows: IDX, q: F64, lo: IDX, a: F64, b: F64
) -> None:
    """Select the needed order statistics of long segments with cascaded partitions.

    Ranks grow with q, so taking the quantiles in ascending q order, partitioning at one
    rank leaves every larger value to its right and the next rank only partitions that
    remainder. The value just above a rank is the minimum of the remainder, cheaper than
    another partition. The loop runs once per window, on plain Python numbers.
    """
    order = np.argsort(q, kind="stable").tolist()
    scratch = np.empty(int(counts[rows].max()))
    # an allocation per window costs as much as the copy into it: reuse one buffer
    found_a: list[float] = []
    found_b: list[float] = []
    for start, m, ranks in zip(
        offsets[rows].tolist(), counts[rows].tolist(), lo[rows].tolist(), strict=True
    ):
        work = scratch[:m]
        np.copyto(work, flat[start : start + m])
        row_a = [0.0] * len(order)
        row_b = [0.0] * len(order)
        done, k_prev, a_prev, b_prev = 0, -1, 0.0, 0.0
        for j in order:
            k = ranks[j]
            if k != k_prev:
                work[done:].partition(k - done)
                done, k_prev = k, k
                a_prev = float(work[k])
                b_prev = float(work[k + 1 :].min()) if k + 1 < m else a_prev
            row_a[j], row_b[j] = a_prev, b_prev
        found_a.extend(row_a)
        found_b.extend(row_b)
    a[rows] = np.asarray(found_a).reshape(rows.shape[0], len(order))
    b[rows] = np.asarray(found_b).reshape(rows.shape[0], len(order))


def window_quantiles(windows: Windows, qs: Sequence[float] | npt.ArrayLike) -> F64:
    """Exact quantiles ``qs`` (0..1) of each window: shape ``(len(windows), len(qs))``."""
    clean = windows.without_nan()
    flat, offsets = contiguous(clean.values, clean.starts, clean.ends)
    return segment_quantiles(flat, offsets, qs)


def window_stats(windows: Windows, stats: Sequence[str], *, ddof: int = 1) -> dict[str, F64]:
    """Compute ``stats`` (names from :data:`WINDOW_STATS`) for every window.

    Returns one float64 array per name, NaN for empty windows (``count`` is 0 there).
    ``stddev`` divides by ``count - ddof`` and is NaN when that is not positive.
    """
    unknown = [s for s in stats if s not in WINDOW_STATS]
    if unknown:
        raise QueryError(f"unknown statistic(s) {unknown}; known: {', '.join(WINDOW_STATS)}")
    sums: F64 | None = None
    if not windows.nan_free and {"sum", "mean", "stddev"} & set(stats):
        # A NaN makes its window's sum NaN, so the sums tell whether dropping NaN (one more
        # pass over the samples) is needed at all.
        flat, offsets = contiguous(windows.values, windows.starts, windows.ends)
        sums = reduce_segments(np.add, flat, offsets)
        if np.isnan(sums[np.diff(offsets) > 0]).any():
            sums = None
        else:
            windows = replace(windows, nan_free=True)
    windows = windows.without_nan()
    flat, offsets = contiguous(windows.values, windows.starts, windows.ends)
    counts = np.diff(offsets)
    nonempty = counts > 0
    out: dict[str, F64] = {}
    for stat in stats:
        if stat == "count":
            out[stat] = counts.astype(np.float64)
        elif stat in ("sum", "mean", "stddev"):
            if sums is None:
                sums = reduce_segments(np.add, flat, offsets)
            if stat == "sum":
                out[stat] = sums
            else:
                mean = sums / np.where(nonempty, counts, 1)
                out[stat] = mean if stat == "mean" else _stddev(flat, offsets, mean, ddof)
        elif stat in ("min", "max"):
            out[stat] = reduce_segments(np.minimum if stat == "min" else np.maximum, flat, offsets)
        else:
            at = offsets[:-1] if stat == "first" else offsets[1:] - 1
            col = np.full(counts.shape[0], np.nan)
            col[nonempty] = flat[at[nonempty]]
            out[stat] = col
    return out


def _stddev(flat: F64, offsets: IDX, mean: F64, ddof: int) -> F64:
    """Two-pass standard deviation: accurate even when the mean dwarfs the spread."""
    counts = np.diff(offsets)
    with np.errstate(invalid="ignore"):  # an infinite sample: NaN, as in Prometheus
        dev = flat - np.repeat(mean, counts)
        squares = reduce_segments(np.add, dev * dev, offsets)
    dof = counts - ddof
    with np.errstate(invalid="ignore", divide="ignore"):
        std: F64 = np.sqrt(squares / np.where(dof > 0, dof, 1))
    std[dof <= 0] = np.nan
    return std
