"""Store-level queries: windowed statistics and PromQL-style functions as pandas frames.

These take the :class:`~metricskit.model.Series` a store read and return DataFrames, so
they work on any backend (``Store.aggregate``/``rate``/``increase``/``over_time`` are thin
wrappers). The numbers come from :mod:`metricskit.query.aggregate`.

- :func:`aggregate_frame`: tumbling windows ``[t, t + step)`` labelled by their start, one
  row per window (per group with ``by``), one column per statistic. Empty windows between
  the first and last are kept, with count 0 and NaN elsewhere (as ``resample``).
- :func:`rate_frame` (``rate``/``increase``/``delta``/``deriv``) and
  :func:`over_time_frame` (``avg``, ``quantile``, ... ``_over_time``): evaluated at
  ``start, start + step, ...`` up to and including ``end`` over ``(t - window, t]``, like a
  Prometheus range query. A series with no value at ``t`` (no non-NaN sample in the
  window; two for the rate-like functions) has no row there (PromQL leaves it out too); a
  NaN result (the mean of +Inf and -Inf) is a row with NaN, as PromQL's NaN sample.

Grouping with ``by`` (tag keys): :func:`aggregate_frame` and :func:`over_time_frame` pool
the samples of all series sharing those tag values, then compute the statistic (the p95
latency over every instance, not an average of per-instance p95s); :func:`rate_frame`
computes each series' rate first and sums them, as ``sum by (...) (rate(x[5m]))`` does
(a counter's resets only make sense within one series). A series without a ``by`` tag
forms its own group with ``None`` there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from metricskit._time import parse_duration
from metricskit.errors import QueryError
from metricskit.model import Series, SeriesKey
from metricskit.query import aggregate as agg
from metricskit.query import range_functions

__all__ = [
    "DEFAULT_STATS",
    "aggregate_frame",
    "over_time_frame",
    "parse_stat",
    "rate_frame",
]

DEFAULT_STATS = ("count", "mean", "p95", "p99")
"""What :func:`aggregate_frame` computes when not told."""

_PERCENTILE = re.compile(r"p(100|\d{1,2}(?:\.\d+)?)")
_ALIASES = {"avg": "mean", "std": "stddev", "median": "p50"}
Duration = str | float | int


def parse_stat(name: str) -> tuple[str, float | None]:
    """``"p99.9"`` -> ``("quantile", 0.999)``; ``"mean"`` -> ``("mean", None)``.

    Known: count, sum, mean (avg), min, max, stddev (std), first, last, median and pNN or
    pNN.N percentiles. Anything else raises :class:`~metricskit.errors.QueryError`.
    """
    if not isinstance(name, str):
        raise QueryError(f"a statistic is named by a string, not {name!r}")
    canonical = _ALIASES.get(name, name)
    match = _PERCENTILE.fullmatch(canonical)
    if match:
        return "quantile", float(match.group(1)) / 100
    if canonical in agg.WINDOW_STATS:
        return canonical, None
    raise QueryError(
        f"unknown statistic {name!r}; use one of {', '.join(agg.WINDOW_STATS)}, median, "
        "or a percentile like p95 or p99.9"
    )


def _duration(d: Duration, what: str) -> int:
    ns = parse_duration(d)
    if ns <= 0:
        raise QueryError(f"{what} must be a positive duration, got {d!r}")
    return ns


def _groups(
    series: Sequence[Series], by: Sequence[str] | None
) -> dict[tuple[Any, ...], list[Series]]:
    """Series grouped by their values of the ``by`` tags (one group of all when None)."""
    groups: dict[tuple[Any, ...], list[Series]] = {}
    keys = list(by or ())
    for s in series:
        groups.setdefault(tuple(s.tags.get(k) for k in keys), []).append(s)
    return dict(sorted(groups.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0])))


def _pool(members: Sequence[Series]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """All samples of ``members`` in time order (a stable merge; equal times all kept)."""
    if len(members) == 1:
        return members[0].timestamps, members[0].values
    ts = np.concatenate([s.timestamps for s in members])
    vals = np.concatenate([s.values for s in members])
    order = np.argsort(ts, kind="stable")
    return ts[order], vals[order]


def _timestamps(ns: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    return cast(
        "pd.DatetimeIndex",
        pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("datetime64[ns]"), tz="UTC"),
    )


def aggregate_frame(
    series: Sequence[Series],
    step: Duration,
    stats: Sequence[str] = DEFAULT_STATS,
    start_ns: int | None = None,
    end_ns: int | None = None,
    by: Sequence[str] | None = None,
    *,
    origin_ns: int = 0,
) -> pd.DataFrame:
    """Statistics of ``series`` in tumbling ``step`` windows aligned to ``origin_ns``.

    Columns: ``timestamp`` (window start, UTC), the ``by`` tags, then one per name in
    ``stats`` (see :func:`parse_stat`), ``count`` as int64. ``stddev`` uses ``ddof=1``
    (pandas' ``std()``). Only samples in ``[start_ns, end_ns)`` count; the windows span
    that range when given, else the groups' samples.
    """
    step_ns = _duration(step, "step")
    stats = list(stats)
    if not stats:
        raise QueryError("no statistic asked for")
    parsed = [parse_stat(s) for s in stats]
    plain = sorted({kind for kind, _ in parsed if kind != "quantile"})
    qs = [q for kind, q in parsed if kind == "quantile" and q is not None]
    by_keys = list(by or ())
    chunks: list[dict[str, Any]] = []
    for group, members in _groups(series, by).items():
        ts, vals = _pool(members)
        windows = agg.tumbling_windows(
            ts, vals, step_ns, start_ns=start_ns, end_ns=end_ns, origin_ns=origin_ns
        )
        if len(windows) == 0:
            continue
        computed = agg.window_stats(windows, plain) if plain else {}
        quantiles = agg.window_quantiles(windows, qs) if qs else None
        cols: dict[str, Any] = {"timestamp": windows.times}
        cols["tags"] = dict(zip(by_keys, group, strict=True))
        qi = 0
        for name, (kind, _) in zip(stats, parsed, strict=True):
            if kind == "quantile":
                assert quantiles is not None
                cols[name] = quantiles[:, qi]
                qi += 1
            elif kind == "count":
                cols[name] = computed["count"].astype(np.int64)
            else:
                cols[name] = computed[kind]
        chunks.append(cols)
    return _concat(chunks, ["timestamp", *by_keys, *stats], by_keys)


def _concat(
    chunks: list[dict[str, Any]], order: list[str], tag_cols: Sequence[str]
) -> pd.DataFrame:
    """One frame from per-chunk columns; a chunk's ``tags`` are constant over its rows.

    Tag columns become categoricals built from codes (never a Python object per row),
    as :func:`metricskit.store.series_frame` does.
    """
    columns: dict[str, Any] = {}
    lengths = np.array([len(c["timestamp"]) for c in chunks], dtype=np.intp)
    for name in order:
        if name in tag_cols:
            per_chunk = [c["tags"].get(name) for c in chunks]
            categories = sorted({v for v in per_chunk if v is not None})
            index = {v: i for i, v in enumerate(categories)}
            codes = np.array([index.get(v, -1) for v in per_chunk], dtype=np.int32)
            columns[name] = pd.Categorical.from_codes(
                np.repeat(codes, lengths), categories=pd.Index(categories, dtype=object)
            )
        elif chunks:
            columns[name] = np.concatenate([np.asarray(c[name]) for c in chunks])
        else:
            columns[name] = np.empty(0, dtype=np.int64 if name in ("timestamp", "count") else float)
    columns["timestamp"] = _timestamps(columns["timestamp"])
    if len(set(order)) == len(order):
        # the dict is already in column order; columns= would cost a reindex (~3x slower)
        return cast("pd.DataFrame", pd.DataFrame(columns, copy=False))
    return cast("pd.DataFrame", pd.DataFrame(columns, columns=order))


def _eval_grid(
    series: Sequence[Series], step_ns: int, start_ns: int | None, end_ns: int | None
) -> npt.NDArray[np.int64]:
    """Evaluation times shared by every series (so groups line up)."""
    if start_ns is None or end_ns is None:
        spans = [range_functions.default_range(s.timestamps, step_ns) for s in series if len(s)]
        found = [span for span in spans if span is not None]
        if not found:
            return np.empty(0, dtype=np.int64)
        start_ns = min(a for a, _ in found) if start_ns is None else start_ns
        end_ns = max(b for _, b in found) if end_ns is None else end_ns
    return range_functions.eval_times(start_ns, end_ns, step_ns)


def _per_series_frame(
    keys: Sequence[SeriesKey],
    times: npt.NDArray[np.int64],
    results: Sequence[npt.NDArray[np.float64]],
    has: Sequence[npt.NDArray[np.bool_]],
) -> pd.DataFrame:
    """Long frame: timestamp, name, one column per tag, value; only where ``has`` a value.

    A NaN result where there is a value (the mean of +Inf and -Inf) is a row with NaN,
    as Prometheus returns a NaN sample.
    """
    tag_keys = sorted({k for key in keys for k in key.tags})
    chunks: list[dict[str, Any]] = []
    for key, values, present in zip(keys, results, has, strict=True):
        n = int(present.sum())
        if n == 0:
            continue
        cols: dict[str, Any] = {"timestamp": times[present], "tags": {"name": key.name, **key.tags}}
        cols["value"] = values[present]
        chunks.append(cols)
    return _concat(chunks, ["timestamp", "name", *tag_keys, "value"], ["name", *tag_keys])


def _add_nan_values(
    present: npt.NDArray[np.bool_],
    ts: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
    window_ns: int,
    times: npt.NDArray[np.int64],
    need: int,
) -> None:
    """Mark as present the NaN results of windows holding ``need`` non-NaN samples.

    On finite samples a NaN result only means too few samples (NaN samples are dropped);
    a NaN *value* (+Inf - Inf) needs an infinite sample, so only such series are counted.
    """
    if np.isinf(vals).any():
        present |= range_functions.window_counts(ts, vals, window_ns, times) >= need


def rate_frame(
    series: Sequence[Series],
    window: Duration,
    step: Duration,
    start_ns: int | None = None,
    end_ns: int | None = None,
    by: Sequence[str] | None = None,
    fn: str = "rate",
) -> pd.DataFrame:
    """``fn(x[window])`` (rate, increase, delta, deriv) for each series at each step.

    Without ``by``: one row per series and time (timestamp, name, tags, value). With
    ``by``: the per-series results summed per group and time, as ``sum by (...)``. The
    samples read must reach back ``window`` before ``start_ns`` for the first step to see
    a full window.
    """
    window_ns = _duration(window, "window")
    step_ns = _duration(step, "step")
    if fn not in range_functions.RANGE_FUNCTIONS:
        raise QueryError(
            f"unknown function {fn!r}; known: {', '.join(range_functions.RANGE_FUNCTIONS)}"
        )
    times = _eval_grid(series, step_ns, start_ns, end_ns)
    columns = [(s.timestamps, s.values) for s in series]
    results = range_functions.range_function_many(fn, columns, window_ns, times)
    present = ~np.isnan(results)
    for i, (ts, vals) in enumerate(columns):
        _add_nan_values(present[i], ts, vals, window_ns, times, 2)
    if by is None:
        return _per_series_frame([s.key for s in series], times, list(results), list(present))
    by_keys = list(by)
    row_of = {id(s): i for i, s in enumerate(series)}
    # one pass over the (series x times) matrix; each group then sums its rows (a NaN
    # value stays NaN in its group's sum, as in PromQL)
    filled = np.where(present, results, 0.0)
    chunks: list[dict[str, Any]] = []
    for group, members in _groups(series, by_keys).items():
        rows = np.fromiter((row_of[id(s)] for s in members), dtype=np.intp, count=len(members))
        has = present[rows].any(axis=0)
        with np.errstate(invalid="ignore"):  # +Inf + -Inf: NaN, as PromQL's sum
            total = filled[rows].sum(axis=0)
        cols: dict[str, Any] = {"timestamp": times[has]}
        cols["tags"] = dict(zip(by_keys, group, strict=True))
        cols["value"] = total[has]
        chunks.append(cols)
    return _concat(chunks, ["timestamp", *by_keys, "value"], by_keys)


def over_time_frame(
    series: Sequence[Series],
    stat: str,
    window: Duration,
    step: Duration,
    start_ns: int | None = None,
    end_ns: int | None = None,
    by: Sequence[str] | None = None,
    *,
    q: float | None = None,
) -> pd.DataFrame:
    """``<stat>_over_time(x[window])`` at each step, the form alert rules evaluate.

    ``stat``: avg (mean), sum, count, min, max, stddev (``ddof=0``, as Prometheus), first,
    last, quantile (with ``q`` in 0..1), median or pNN. Without ``by``: one row per series
    and time (timestamp, name, tags, value); with ``by``: one row per group and time, over
    the pooled samples of the group's series.
    """
    window_ns = _duration(window, "window")
    step_ns = _duration(step, "step")
    kind, pq = ("quantile", q) if stat == "quantile" else parse_stat(stat)
    if kind == "quantile" and pq is None:
        raise QueryError("quantile needs q (0..1), or name the percentile: 'p95'")
    kind = "avg" if kind == "mean" else kind
    times = _eval_grid(series, step_ns, start_ns, end_ns)

    def compute(
        ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        # no (non-NaN) sample: no row, count included; a NaN result is a row
        out = range_functions.over_time(kind, ts, vals, window_ns, times, q=pq)
        present = out > 0 if kind == "count" else ~np.isnan(out)
        _add_nan_values(present, ts, vals, window_ns, times, 1)
        return out, present

    if by is None:
        computed = [compute(s.timestamps, s.values) for s in series]
        return _per_series_frame(
            [s.key for s in series], times, [v for v, _ in computed], [h for _, h in computed]
        )
    by_keys = list(by)
    chunks: list[dict[str, Any]] = []
    for group, members in _groups(series, by_keys).items():
        values, present = compute(*_pool(members))
        cols: dict[str, Any] = {"timestamp": times[present]}
        cols["tags"] = dict(zip(by_keys, group, strict=True))
        cols["value"] = values[present]
        chunks.append(cols)
    return _concat(chunks, ["timestamp", *by_keys, "value"], by_keys)
