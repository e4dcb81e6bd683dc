"""Find the series a query's selectors match and read each one once.

Names follow the exposition's mapping (:func:`metricskit.exposition.exposed_name`):
``http.request.duration_seconds`` is ``http_request_duration_seconds`` to PromQL, a counter
gets ``_total`` and a value in an abbreviated unit is scaled to the base unit, exactly as
``/metrics`` and the Grafana dashboard show it. A matcher on ``__name__`` also accepts the
stored dotted name (``{__name__="http.request.duration_seconds"}``).

A histogram metric (one sample per observation) is also queryable as the cumulative
``_bucket{le=...}``, ``_sum`` and ``_count`` counters ``/metrics`` exports for it, with
the exposition's buckets: a sample at every observation, counting every observation the
store holds up to then (so those series are read from the beginning of the store).

The store's key index is listed once per query; each selector's matchers are applied to
the keys, and only the matching series are read, each over the union of the time spans
the query needs from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from metricskit.catalog import MetricKind
from metricskit.exposition import DEFAULT_BUCKETS, ExposedName, exposed_name, format_value
from metricskit.model import Selector, SeriesKey
from metricskit.query._plan import VectorSelector
from metricskit.query._values import F64, I64, NAME, Labels
from metricskit.storage.base import MIN_NS, StorageBackend

__all__ = ["Fetched", "fetch"]

_BOUNDS = (*DEFAULT_BUCKETS, float("inf"))


@dataclass
class Fetched:
    """The series each selector matched: their labels and samples (values scaled)."""

    by_selector: dict[VectorSelector, list[int]] = field(default_factory=dict)
    labels: list[Labels] = field(default_factory=list)
    samples: list[tuple[I64, F64]] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    """A series PromQL can see: a stored one, or one derived from a histogram's samples."""

    key: SeriesKey
    name: str
    labels: Labels
    derived: str | None = None  # "bucket", "sum" or "count"
    bound: float = 0.0


def _candidates(keys: list[SeriesKey]) -> tuple[list[_Candidate], dict[str, ExposedName]]:
    names = {name: exposed_name(name) for name in {k.name for k in keys}}
    out = []
    for key in keys:
        exposed = names[key.name]
        tags = key.tags.items_tuple
        out.append(_Candidate(key, exposed.sample, tuple(sorted(((NAME, exposed.sample), *tags)))))
        if exposed.kind is not MetricKind.HISTOGRAM:
            continue
        for bound in _BOUNDS:
            labels = ((NAME, f"{exposed.family}_bucket"), ("le", format_value(bound)), *tags)
            out.append(_Candidate(key, "", tuple(sorted(labels)), "bucket", bound))
        for part in ("sum", "count"):
            labels = ((NAME, f"{exposed.family}_{part}"), *tags)
            out.append(_Candidate(key, "", tuple(sorted(labels)), part))
    return out, names


def _matches(selector: VectorSelector, c: _Candidate) -> bool:
    labels = dict(c.labels)
    for m in selector.matchers:
        actual = labels.get(m.label, "")
        if m.label == NAME and c.derived is None:
            # the stored dotted name is an alias of the exposed one
            positive = m.op in ("=", "=~")
            hit, alias = m.matches(actual), m.matches(c.key.name)
            if not ((hit or alias) if positive else (hit and alias)):
                return False
        elif not m.matches(actual):
            return False
    return True


def _derive(c: _Candidate, ts: I64, values: F64) -> tuple[I64, F64]:
    keep = ~np.isnan(values)
    ts, values = ts[keep], values[keep]
    if c.derived == "bucket":
        return ts, np.cumsum(values <= c.bound).astype(np.float64)
    if c.derived == "sum":
        return ts, np.cumsum(values)
    return ts, np.arange(1, ts.shape[0] + 1, dtype=np.float64)


def fetch(backend: StorageBackend, spans: dict[VectorSelector, tuple[int, int]]) -> Fetched:
    """Read the series ``spans``' selectors match, each over the union of its spans.

    A span is inclusive ``[lo, hi]`` nanoseconds.
    """
    out = Fetched()
    if not spans:
        return out
    candidates, names = _candidates(sorted(backend.select(Selector())))
    wanted: dict[SeriesKey, tuple[int, int]] = {}
    matched: dict[VectorSelector, list[_Candidate]] = {}
    for selector, (lo, hi) in spans.items():
        hits = [c for c in candidates if _matches(selector, c)]
        matched[selector] = hits
        for c in hits:
            # a histogram's counters count from the store's first observation
            lo_c = MIN_NS if c.derived else lo
            old = wanted.get(c.key)
            wanted[c.key] = (lo_c, hi) if old is None else (min(old[0], lo_c), max(old[1], hi))
    read: dict[SeriesKey, tuple[I64, F64]] = {}
    for key, (lo, hi) in wanted.items():
        series = backend.read(key, lo, hi + 1)
        scale = names[key.name].scale
        values = series.values if scale == 1.0 else series.values * scale
        read[key] = (np.asarray(series.timestamps, dtype=np.int64), values)
    row: dict[_Candidate, int] = {}
    for hits in matched.values():
        for c in hits:
            if c in row:
                continue
            row[c] = len(out.labels)
            out.labels.append(c.labels)
            ts, values = read[c.key]
            out.samples.append(_derive(c, ts, values) if c.derived else (ts, values))
    out.by_selector = {sel: [row[c] for c in hits] for sel, hits in matched.items()}
    return out
