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
from metricskit.query._plan import Matcher, VectorSelector
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


@functools.lru_cache(maxsize=4096)
def _promql_name(stored: str) -> tuple[str, bool]:
    """The ``__name__`` a stored name answers to, and whether the stored name does too."""
    base = histogram_of(stored)
    if base is None:
        return _exposed(stored).sample, True
    return f"{_exposed(base).family}_{stored.rpartition(':')[2]}", False


@functools.lru_cache(maxsize=1 << 16)
def candidate(key: SeriesKey) -> _Candidate:
    """A stored key as PromQL sees it: its exposed name and labels."""
    name, aliased = _promql_name(key.name)
    if aliased:
        labels = tuple(sorted(((NAME, name), *key.tags.items_tuple)))
        return _Candidate(key, labels, _exposed(key.name).scale, True)
    exposed = _exposed(histogram_of(key.name) or key.name)
    part = key.name.rpartition(":")[2]  # bucket, sum or count
    tags = [(k, _le(v, exposed.scale) if k == "le" else v) for k, v in key.tags.items_tuple]
    labels = tuple(sorted(((NAME, name), *tags)))
    return _Candidate(key, labels, exposed.scale if part == "sum" else 1.0, False)


def _name_matches(m: Matcher, name: str, stored: str, aliased: bool) -> bool:
    """A ``__name__`` matcher on a series exposed as ``name`` and stored as ``stored``."""
    if not aliased:
        return m.matches(name)
    hit, alias = m.matches(name), m.matches(stored)
    return (hit or alias) if m.op in ("=", "=~") else (hit and alias)


def _accepts(on_name: list[Matcher], stored: str) -> bool:
    """True if every ``__name__`` matcher accepts the series stored under ``stored``."""
    name, aliased = _promql_name(stored)
    return all(_name_matches(m, name, stored, aliased) for m in on_name)


def selector_matches(selector: VectorSelector, c: _Candidate) -> bool:
    """True when every matcher of ``selector`` accepts the candidate's labels."""
    labels = dict(c.labels)
    for m in selector.matchers:
        actual = labels.get(m.label, "")
        if m.label == NAME:
            if not _name_matches(m, actual, c.key.name, c.aliased):
                return False
        elif not m.matches(actual):
            return False
    return True


_BY_NAME_LIMIT = 8
"""Above this many accepted names, one listing of every key beats a lookup per name."""


class _Keys:
    """The store's keys, listed lazily once per query: by stored name, or all of them."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self._names: set[str] | None = None
        self._by_name: dict[str, list[_Candidate]] = {}
        self._all: list[_Candidate] | None = None

    def _of(self, selector: Selector) -> list[_Candidate]:
        return [candidate(key) for key in self.backend.select(selector)]  # metadata only

    def _every(self) -> list[_Candidate]:
        if self._all is None:
            self._all = self._of(Selector())
        return self._all

    def for_selector(self, selector: VectorSelector) -> list[_Candidate]:
        """A superset of the series ``selector`` matches, found through their names.

        A ``__name__`` matcher depends on the stored name alone, so it is decided once per
        distinct name; only the names it accepts are listed, by name (an index lookup),
        unless a regex accepts many of them.
        """
        on_name = [m for m in selector.matchers if m.label == NAME]
        if not on_name:
            return self._every()
        if self._names is None:
            self._names = self.backend.names()
        accepted = [stored for stored in sorted(self._names) if _accepts(on_name, stored)]
        if len(accepted) > _BY_NAME_LIMIT:
            wanted = set(accepted)
            return [c for c in self._every() if c.key.name in wanted]
        out: list[_Candidate] = []
        for stored in accepted:
            found = self._by_name.get(stored)
            if found is None:
                found = self._by_name[stored] = self._of(Selector.of(stored))
            out.extend(found)
        return out


def fetch(backend: StorageBackend, spans: dict[VectorSelector, tuple[int, int]]) -> Fetched:
    """Read the series ``spans``' selectors match, each once over the union of its spans.

    A span is inclusive ``[lo, hi]`` nanoseconds. Series needing the same span are read
    with one :meth:`~metricskit.storage.base.StorageBackend.read_many`.
    """
    out = Fetched()
    if not spans:
        return out
    keys = _Keys(backend)
    wanted: dict[SeriesKey, tuple[int, int]] = {}
    matched: dict[VectorSelector, list[_Candidate]] = {}
    for selector, (lo, hi) in spans.items():
        hits = [c for c in keys.for_selector(selector) if selector_matches(selector, c)]
        hits.sort(key=lambda c: c.labels)
        matched[selector] = hits
        for c in hits:
            old = wanted.get(c.key)
            wanted[c.key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    row: dict[SeriesKey, int] = {}  # keys hash faster than candidates
    first: list[_Candidate] = []
    for hits in matched.values():
        for c in hits:
            if c.key not in row:
                row[c.key] = len(row)
                first.append(c)
                out.labels.append(c.labels)
    by_span: dict[tuple[int, int], list[_Candidate]] = {}
    for c in first:
        by_span.setdefault(wanted[c.key], []).append(c)
    samples: list[tuple[I64, F64] | None] = [None] * len(row)
    for (lo, hi), group in by_span.items():
        read = backend.read_many([c.key for c in group], lo, hi + 1)
        for c, series in zip(group, read, strict=True):
            values = series.values if c.scale == 1.0 else series.values * c.scale
            samples[row[c.key]] = (np.asarray(series.timestamps, dtype=np.int64), values)
    out.samples = [s for s in samples if s is not None]
    out.by_selector = {sel: [row[c.key] for c in hits] for sel, hits in matched.items()}
    return out
