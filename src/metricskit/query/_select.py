"""Find the series a query's selectors match and read each one once.

Names follow the exposition's mapping (:func:`metricskit.naming.exposed_name`):
``http.request.duration_seconds`` is ``http_request_duration_seconds`` to PromQL, a counter
gets ``_total`` and a value in an abbreviated unit is scaled to the base unit, exactly as
``/metrics`` and the Grafana dashboard show it. A matcher on ``__name__`` also accepts the
stored dotted name (``{__name__="http.request.duration_seconds"}``).

A histogram metric's counter parts, which the Recorder keeps beside its observations
(:func:`metricskit.catalog.histogram_parts`), answer as the ``_bucket{le=...}``, ``_sum``
and ``_count`` series ``/metrics`` exports, ``le`` and ``_sum`` in the base unit; the
observations themselves answer to the family name
(``max_over_time(http_request_duration_seconds[5m])``).

The store's key index is listed once per query; each selector's matchers are applied to
the keys, and only the matching series are read, each over the union of the time spans
the query needs from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from metricskit.catalog import histogram_of
from metricskit.model import Selector, SeriesKey
from metricskit.naming import ExposedName, exposed_name, format_value
from metricskit.query._plan import VectorSelector
from metricskit.query._values import F64, I64, NAME, Labels
from metricskit.storage.base import StorageBackend

__all__ = ["Fetched", "candidate", "fetch", "selector_matches"]


@dataclass
class Fetched:
    """The series each selector matched: their labels and samples (values scaled)."""

    by_selector: dict[VectorSelector, list[int]] = field(default_factory=dict)
    labels: list[Labels] = field(default_factory=list)
    samples: list[tuple[I64, F64]] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    """A stored series as PromQL sees it: its labels and the factor to its base unit."""

    key: SeriesKey
    labels: Labels
    scale: float
    aliased: bool  # the stored dotted name also matches __name__


def _le(value: str, scale: float) -> str:
    if scale == 1.0 or value == "+Inf":
        return value
    try:
        return format_value(float(value) * scale)
    except ValueError:
        return value


@functools.lru_cache(maxsize=4096)
def _exposed(name: str) -> ExposedName:
    # names repeat across a metric's series; the catalog lookup and regexes run once
    return exposed_name(name)


def candidate(key: SeriesKey) -> _Candidate:
    """A stored key as PromQL sees it: its exposed name and labels."""
    base = histogram_of(key.name)
    if base is None:
        exposed = _exposed(key.name)
        labels = tuple(sorted(((NAME, exposed.sample), *key.tags.items_tuple)))
        return _Candidate(key, labels, exposed.scale, True)
    exposed = _exposed(base)
    part = key.name.rpartition(":")[2]  # bucket, sum or count
    tags = [(k, _le(v, exposed.scale) if k == "le" else v) for k, v in key.tags.items_tuple]
    labels = tuple(sorted(((NAME, f"{exposed.family}_{part}"), *tags)))
    return _Candidate(key, labels, exposed.scale if part == "sum" else 1.0, False)


def selector_matches(selector: VectorSelector, c: _Candidate) -> bool:
    """True when every matcher of ``selector`` accepts the candidate's labels."""
    labels = dict(c.labels)
    for m in selector.matchers:
        actual = labels.get(m.label, "")
        if m.label == NAME and c.aliased:
            positive = m.op in ("=", "=~")
            hit, alias = m.matches(actual), m.matches(c.key.name)
            if not ((hit or alias) if positive else (hit and alias)):
                return False
        elif not m.matches(actual):
            return False
    return True


def fetch(backend: StorageBackend, spans: dict[VectorSelector, tuple[int, int]]) -> Fetched:
    """Read the series ``spans``' selectors match, each over the union of its spans.

    A span is inclusive ``[lo, hi]`` nanoseconds.
    """
    out = Fetched()
    if not spans:
        return out
    candidates = [candidate(key) for key in backend.select(Selector())]  # metadata only
    candidates.sort(key=lambda c: c.labels)
    wanted: dict[SeriesKey, tuple[int, int]] = {}
    matched: dict[VectorSelector, list[_Candidate]] = {}
    for selector, (lo, hi) in spans.items():
        hits = [c for c in candidates if selector_matches(selector, c)]
        matched[selector] = hits
        for c in hits:
            old = wanted.get(c.key)
            wanted[c.key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    row: dict[_Candidate, int] = {}
    for hits in matched.values():
        for c in hits:
            if c in row:
                continue
            lo, hi = wanted[c.key]
            series = backend.read(c.key, lo, hi + 1)
            values = series.values if c.scale == 1.0 else series.values * c.scale
            row[c] = len(out.labels)
            out.labels.append(c.labels)
            out.samples.append((np.asarray(series.timestamps, dtype=np.int64), values))
    out.by_selector = {sel: [row[c] for c in hits] for sel, hits in matched.items()}
    return out
