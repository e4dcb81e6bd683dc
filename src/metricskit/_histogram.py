"""The cumulative counters the Recorder keeps beside a histogram's observations.

A histogram metric (``http.request.duration_seconds``) stores one sample per observation.
Exposing it by re-binning every stored observation at each scrape costs time in
proportion to history, and its ``_count`` would stop growing at a per-series cap and fall
when retention deletes observations: Prometheus' ``rate()`` then reads 0 or a false
reset. So at every flush the Recorder adds each batch's observations to running totals
and writes them as counter series (:func:`metricskit.catalog.histogram_parts`): one
``<name>:bucket`` series per bound (tagged ``le``, ``+Inf`` included), ``<name>:sum`` and
``<name>:count``, all parts of one series at one timestamp. ``/metrics`` reads only their
newest samples.

The totals live in the store, so they survive a restart and any process reads them: the
first time a Recorder meets a series it resumes from the newest stored totals. One series
has one writer at a time; processes recording at once tag their series apart (``host``,
a worker id), as Prometheus needs distinct ``instance`` labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from metricskit.catalog import MetricKind, describe, histogram_of, histogram_parts
from metricskit.model import Series, SeriesKey, Tags
from metricskit.naming import format_value

__all__ = ["HistogramCounters", "is_histogram"]

ReadLast = Callable[[SeriesKey], "tuple[int, float] | None"]


def is_histogram(name: str) -> bool:
    """True for a histogram metric's observations (not for its counter parts)."""
    return describe(name).kind is MetricKind.HISTOGRAM and histogram_of(name) is None


class _Totals:
    """One series' running totals and the keys of its parts."""

    __slots__ = ("bucket_keys", "count_key", "cumulative", "sum", "sum_key", "ts")

    def __init__(self, key: SeriesKey, les: Sequence[str]) -> None:
        parts = histogram_parts(key.name)
        self.bucket_keys = [
            SeriesKey(
                parts.bucket, Tags._trusted(tuple(sorted((*key.tags.items_tuple, ("le", le)))))
            )
            for le in les
        ]
        self.sum_key = SeriesKey(parts.sum, key.tags)
        self.count_key = SeriesKey(parts.count, key.tags)
        self.cumulative: npt.NDArray[np.float64] = np.zeros(len(les), dtype=np.float64)
        self.sum = 0.0
        self.ts = -(2**63)

    def resume(self, read_last: ReadLast) -> None:
        """Start from the newest stored totals, if every part of them is there."""
        count = read_last(self.count_key)
        if count is None:
            return
        stored = [read_last(k) for k in self.bucket_keys]
        total = read_last(self.sum_key)
        if total is None or any(b is None or b[0] != count[0] for b in stored):
            return  # written with other bounds (or half deleted): a counter reset
        self.cumulative = np.array([b[1] for b in stored if b is not None], dtype=np.float64)
        self.sum = total[1]
        self.ts = count[0]

    def add(
        self,
        bounds: npt.NDArray[np.float64],
        ts: npt.NDArray[np.int64],
        vs: npt.NDArray[np.float64],
    ) -> bool:
        observed = vs[~np.isnan(vs)]
        if not observed.size:
            return False
        slot = np.searchsorted(bounds, observed, side="left")
        self.cumulative += np.cumsum(np.bincount(slot, minlength=len(bounds) + 1))
        self.sum += float(observed.sum())
        self.ts = max(self.ts, int(ts.max()))
        return True

    def series(self) -> list[Series]:
        t = np.array([self.ts], dtype=np.int64)
        out = [
            Series(k, t, np.array([c], dtype=np.float64))
            for k, c in zip(self.bucket_keys, self.cumulative.tolist(), strict=True)
        ]
        out.append(Series(self.sum_key, t, np.array([self.sum], dtype=np.float64)))
        out.append(Series(self.count_key, t, self.cumulative[-1:].copy()))
        return out


class HistogramCounters:
    """Turns each flushed batch's histogram observations into cumulative counter series.

    ``read_last(key)`` returns a stored series' newest ``(ts_ns, value)`` (``None`` for
    none); without it totals start at zero. Not thread-safe: the Recorder calls
    :meth:`derive` under its flush lock.
    """

    def __init__(self, bounds: Sequence[float], read_last: ReadLast | None) -> None:
        self.bounds = np.array(sorted(set(bounds)), dtype=np.float64)
        self._les = [format_value(b) for b in self.bounds.tolist()] + ["+Inf"]
        self._read_last = read_last
        self._totals: dict[SeriesKey, _Totals] = {}

    def wants(self, key: SeriesKey) -> bool:
        """True for the observations of a histogram metric."""
        return is_histogram(key.name)

    def derive(self, batch: Sequence[Series]) -> list[Series]:
        """The counter series to write with ``batch`` (empty when it holds no histogram).

        Raises what ``read_last`` raises, before changing any total, so the same batch
        can be derived again.
        """
        groups: dict[SeriesKey, list[Series]] = {}
        for s in batch:
            if is_histogram(s.key.name):
                groups.setdefault(s.key, []).append(s)
        fresh = {}
        for key in groups:
            if key not in self._totals:
                totals = fresh[key] = _Totals(key, self._les)
                if self._read_last is not None:
                    totals.resume(self._read_last)
        self._totals.update(fresh)
        out: list[Series] = []
        for key, parts in groups.items():
            totals = self._totals[key]
            ts = np.concatenate([p.timestamps for p in parts])
            vs = np.concatenate([p.values for p in parts])
            if totals.add(self.bounds, ts, vs):
                out += totals.series()
        return out
