"""Trend analysis with pandas: slopes and forecasts, period-over-period change, anomalies.

All three read a store and return DataFrames (one row per series, or per flagged
sample) with the series' tags as columns, so they filter, sort and plot directly:

- :func:`linear_trends`: a least-squares line through each series' samples in the window
  ``(now - window, now]``: its slope per hour, the value it predicts ``horizon`` ahead
  (Prometheus' ``predict_linear``), and when it will cross a threshold (disk full).
- :func:`period_change`: a statistic of the last ``window`` against the same window one
  ``period`` earlier (``"1d"`` day over day, ``"7d"`` week over week).
- :func:`anomalies`: samples whose z-score against the rolling mean and standard deviation
  of the preceding ``window`` (the sample itself excluded) exceeds a bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from metricskit._time import NS_PER_S, TimeLike, parse_duration, to_ns
from metricskit.errors import QueryError
from metricskit.model import Series

if TYPE_CHECKING:
    import pandas as pd

    from metricskit.store import Store

__all__ = ["anomalies", "fit_line", "linear_trends", "period_change"]

_TS = "datetime64[ns, UTC]"
_LATEST_NS = 2**63 - 1
_STATS = {"mean", "median", "min", "max", "last", "sum"}


def fit_line(
    timestamps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], now_ns: int
) -> tuple[float, float]:
    """Least-squares ``(slope per second, value at now_ns)`` of the non-NaN samples.

    ``(nan, nan)`` with fewer than two samples or all at one time, as Prometheus does.
    """
    keep = ~np.isnan(values)
    y = values[keep]
    if y.size < 2:
        return float("nan"), float("nan")
    x = (timestamps[keep] - now_ns) / NS_PER_S
    x_mean = x.mean()
    dx = x - x_mean
    var = float(np.dot(dx, dx))
    if var == 0.0:
        return float("nan"), float("nan")
    slope = float(np.dot(dx, y - y.mean())) / var
    return slope, float(y.mean() - slope * x_mean)


def _now(store: Store, name: str, now: TimeLike | None) -> int:
    if now is not None:
        return to_ns(now)
    newest = [ts for _key, ts, _v in store.latest(name)]
    return max(newest) if newest else 0


def _read(
    store: Store, name: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None
) -> list[Series]:
    """Series of ``name`` in ``(start_ns, end_ns]`` (the range-selector bounds)."""
    return store.query(
        name, np.datetime64(start_ns + 1, "ns"), np.datetime64(end_ns + 1, "ns"), tags
    )


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(columns))
    return frame


def _timestamp(ns: int | None) -> Any:
    import pandas as pd

    return pd.NaT if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")


def _key_columns(series: Series) -> dict[str, Any]:
    return {"name": series.name, **dict(series.tags)}


def linear_trends(
    store: Store,
    name: str,
    window: str | float = "6h",
    *,
    now: TimeLike | None = None,
    horizon: str | float = "24h",
    threshold: float | None = None,
    tags: Mapping[str, str] | None = None,
    min_samples: int = 2,
    min_span: str | float = 0,
) -> pd.DataFrame:
    """One row per series: samples, last value, slope per hour, forecast, threshold crossing.

    ``now`` defaults to the newest sample of ``name``. ``crossing_at`` is when the line
    reaches ``threshold``, if it is heading there (NaT otherwise, or when already past).

    A line through a minute of data forecasts nothing: a series with fewer than
    ``min_samples`` samples, or whose samples span less than ``min_span``, has
    ``enough_data`` False and NaN slope, forecast and crossing. ``span_hours`` says how
    much history the fit had.
    """
    end_ns = _now(store, name, now)
    horizon_s = parse_duration(horizon) / NS_PER_S
    min_span_ns = parse_duration(min_span) if min_span else 0
    rows = []
    for s in _read(store, name, end_ns - parse_duration(window), end_ns, tags):
        present = s.timestamps[~np.isnan(s.values)]
        span_ns = int(present[-1] - present[0]) if present.size else 0
        enough = present.size >= max(min_samples, 2) and span_ns >= min_span_ns
        slope, at_now = fit_line(s.timestamps, s.values, end_ns)
        if not enough:
            slope = at_now = float("nan")
        crossing = None
        if threshold is not None and slope == slope and slope != 0.0:
            seconds = (threshold - at_now) / slope
            # a crossing past what datetime64[ns] holds (year 2262) is "not in sight"
            if 0 < seconds < (_LATEST_NS - end_ns) / NS_PER_S:
                crossing = end_ns + round(seconds * NS_PER_S)
        rows.append(
            {
                **_key_columns(s),
                "samples": int(present.size),
                "span_hours": span_ns / NS_PER_S / 3600,
                "enough_data": bool(enough),
                "last_value": float(s.values[-1]),
                "slope_per_hour": slope * 3600.0,
                "fitted_now": at_now,
                "predicted": at_now + slope * horizon_s,
                "predicted_at": _timestamp(end_ns + round(horizon_s * NS_PER_S)),
                "threshold": threshold,
                "crossing_at": _timestamp(crossing),
                "hours_to_threshold": (crossing - end_ns) / NS_PER_S / 3600 if crossing else None,
            }
        )
    return _frame(rows, ["name", "samples", "last_value", "slope_per_hour", "predicted"])


def _statistic(values: npt.NDArray[np.float64], stat: str) -> float:
    clean = values[~np.isnan(values)]
    if not clean.size:
        return float("nan")
    if stat == "last":
        return float(clean[-1])
    return float(getattr(np, stat)(clean))


def period_change(
    store: Store,
    name: str,
    period: str | float = "1d",
    window: str | float = "1h",
    *,
    stat: str = "mean",
    now: TimeLike | None = None,
    tags: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per series: ``stat`` over the last ``window`` vs the window one ``period`` ago.

    Columns ``current``, ``previous``, ``change`` and ``change_percent`` (NaN when the
    previous value is 0 or missing).
    """
    if stat not in _STATS:
        raise QueryError(f"unknown statistic {stat!r}; use one of {sorted(_STATS)}")
    end_ns = _now(store, name, now)
    window_ns, period_ns = parse_duration(window), parse_duration(period)
    current = {s.key: s for s in _read(store, name, end_ns - window_ns, end_ns, tags)}
    earlier_end = end_ns - period_ns
    previous = {s.key: s for s in _read(store, name, earlier_end - window_ns, earlier_end, tags)}
    rows = []
    for key in sorted(current.keys() | previous.keys()):
        now_value = _statistic(current[key].values, stat) if key in current else float("nan")
        then = _statistic(previous[key].values, stat) if key in previous else float("nan")
        change = now_value - then
        rows.append(
            {
                "name": key.name,
                **dict(key.tags),
                "current": now_value,
                "previous": then,
                "change": change,
                "change_percent": change / abs(then) * 100
                if then == then and then != 0
                else np.nan,
            }
        )
    return _frame(rows, ["name", "current", "previous", "change", "change_percent"])


def anomalies(
    store: Store,
    name: str,
    window: str | float = "1h",
    *,
    z: float = 3.0,
    min_samples: int = 10,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    tags: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Samples whose |z-score| against the preceding ``window`` exceeds ``z``.

    The baseline of a sample is the mean and standard deviation of the same series'
    samples in the ``window`` before it (itself excluded); samples with fewer than
    ``min_samples`` before them, or a constant baseline, are not judged.
    """
    import pandas as pd

    if z <= 0:
        raise QueryError(f"z must be positive, got {z}")
    window_td = pd.Timedelta(parse_duration(window), unit="ns")
    rows = []
    for s in store.query(name, start, end, tags):
        values = pd.Series(s.values, index=pd.DatetimeIndex(s.timestamps.view("datetime64[ns]")))
        rolling = values.rolling(window_td, closed="left", min_periods=min_samples)
        mean, std = rolling.mean(), rolling.std()
        zscores = (values - mean) / std
        flagged = np.flatnonzero((np.abs(zscores.to_numpy()) > z) & (std.to_numpy() > 0))
        for i in flagged.tolist():
            rows.append(
                {
                    "timestamp": _timestamp(int(s.timestamps[i])),
                    **_key_columns(s),
                    "value": float(s.values[i]),
                    "baseline_mean": float(mean.iloc[i]),
                    "baseline_std": float(std.iloc[i]),
                    "zscore": float(zscores.iloc[i]),
                }
            )
    return _frame(rows, ["timestamp", "name", "value", "baseline_mean", "baseline_std", "zscore"])
