"""What the rules engine reads: each metric once per evaluation, every rule's value at once.

Many rules share a metric (one per threshold, one per statistic), so the engine reads
each metric's series once, over the longest span any of its rules needs, lays them end to
end (:class:`MetricData`) and computes each distinct (statistic, window) for all series
in one vectorised pass with the :mod:`metricskit.query.aggregate` kernels.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from metricskit.alerting.rules_model import AlertRule
from metricskit.model import Selector, Series, SeriesKey
from metricskit.query.aggregate import Windows, window_quantiles, window_stats
from metricskit.query.range_functions import extrapolated_rate
from metricskit.storage.base import StorageBackend
from metricskit.store import Store

__all__ = ["MetricData", "read_metrics"]

logger = logging.getLogger("metricskit.alerting.engine")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

_STAT_NAMES = {"avg": "mean", "mean": "mean"}


@dataclass
class MetricData:
    """One metric's series with samples in ``(t - span, t]``, laid end to end.

    Series ``i`` is ``timestamps/values[offsets[i]:offsets[i + 1]]``. ``error`` is set
    (and the arrays are empty) when the metric could not be read.
    """

    t: int
    keys: list[SeriesKey]
    timestamps: I64
    values: F64
    offsets: npt.NDArray[np.intp]
    error: str | None = None
    _cache: dict[tuple[str, int], tuple[F64, BOOL]] = field(default_factory=dict)
    _position: dict[SeriesKey, int] | None = None

    @property
    def position(self) -> dict[SeriesKey, int]:
        """Index of each key in :attr:`keys` (built once per evaluation, shared by rules)."""
        if self._position is None:
            self._position = {k: i for i, k in enumerate(self.keys)}
        return self._position

    @classmethod
    def of(cls, t: int, series: Iterable[Series]) -> MetricData:
        """Lay out non-empty ``series`` (samples at or before ``t``)."""
        chosen = [s for s in series if len(s)]
        lengths = np.fromiter((len(s) for s in chosen), dtype=np.intp, count=len(chosen))
        offsets = np.zeros(len(chosen) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        if chosen:
            ts = np.concatenate([s.timestamps for s in chosen])
            vs = np.concatenate([s.values for s in chosen])
        else:
            ts, vs = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return cls(t, [s.key for s in chosen], ts, vs, offsets)

    @classmethod
    def failed(cls, t: int, error: str) -> MetricData:
        """A metric whose read failed: no series, and the reason."""
        data = cls.of(t, ())
        data.error = error
        return data

    def values_for(self, rule: AlertRule) -> tuple[F64, BOOL]:
        """``rule``'s value for every series and whether each has one (PromQL: a sample).

        A last-value rule takes the newest sample within its lookback, NaN included (a
        NaN sample is a value, as in Prometheus). A stat rule computes the statistic over
        the non-NaN samples in ``(t - window, t]`` and has a value when there is one such
        sample (two for ``rate``/``increase``); the value may still be NaN (the mean of
        +Inf and -Inf). Where there is no value it is NaN. Cached per (stat, span) for
        this evaluation.
        """
        span = rule.window_ns if rule.window_ns is not None else rule.lookback_ns
        cache_key = (rule.stat, span)
        found = self._cache.get(cache_key)
        if found is None:
            found = self._cache[cache_key] = self._compute(rule, span)
        return found

    def _compute(self, rule: AlertRule, span: int) -> tuple[F64, BOOL]:
        n = len(self.keys)
        inside = np.zeros(self.timestamps.shape[0] + 1, dtype=np.intp)
        np.cumsum(self.timestamps > self.t - span, out=inside[1:])
        ends = self.offsets[1:]
        counts = inside[ends] - inside[self.offsets[:-1]]
        starts = ends - counts
        present = counts > 0
        stat = rule.stat
        if stat == "last" and rule.window_ns is None:
            values = np.full(n, np.nan)
            values[present] = self.values[ends[present] - 1]
            return values, present
        times = np.full(n, self.t, dtype=np.int64)
        windows = Windows(times, starts, ends, self.timestamps, self.values).without_nan()
        q = rule.quantile
        if q is not None:
            values = window_quantiles(windows, [q])[:, 0]
        elif stat in ("rate", "increase"):
            values = extrapolated_rate(windows, span, is_counter=True, is_rate=stat == "rate")
        else:
            name = _STAT_NAMES.get(stat, stat)
            values = window_stats(windows, [name], ddof=0)[name]
        # Series whose window has no (non-NaN) sample were read for a wider rule on the
        # same metric; like a series with none at all they have no value (count: not 0)
        present = windows.counts >= (2 if stat in ("rate", "increase") else 1)
        values[~present] = np.nan
        return values, present


def _pushes_down(backend: StorageBackend) -> bool:
    return type(backend).query is not StorageBackend.query


def read_metrics(store: Store, spans: Mapping[str, int], t: int) -> dict[str, MetricData]:
    """Read each metric in ``spans`` over ``(t - span, t]``; a failed read is reported, not raised.

    A backend that implements ``query`` itself (SQL: one statement per metric) is asked per
    metric. For the others, ``query`` would list every key once per metric, so the key
    list is taken once and shared; the reads are the same per-key reads either way.
    """
    end = t + 1
    out: dict[str, MetricData] = {}
    backend = store.backend
    if _pushes_down(backend):
        for name, span in spans.items():
            try:
                found = backend.query(Selector(name), end - span, end)
                out[name] = MetricData.of(t, found)
            except Exception as exc:  # a failed read must not stop the other rules
                logger.warning("rules: reading %s failed: %s", name, exc)
                out[name] = MetricData.failed(t, f"{type(exc).__name__}: {exc}")
        return out
    by_name: dict[str, list[SeriesKey]] = defaultdict(list)
    try:
        for key in backend.keys():
            if key.name in spans:
                by_name[key.name].append(key)
    except Exception as exc:
        logger.warning("rules: listing series failed: %s", exc)
        return {name: MetricData.failed(t, f"{type(exc).__name__}: {exc}") for name in spans}
    for name, span in spans.items():
        try:
            keys = by_name.get(name, [])
            out[name] = MetricData.of(t, (backend.read(k, end - span, end) for k in keys))
        except Exception as exc:
            logger.warning("rules: reading %s failed: %s", name, exc)
            out[name] = MetricData.failed(t, f"{type(exc).__name__}: {exc}")
    return out
