"""Find the series a query's selectors match and read each one once.

Names follow the exposition's mapping (:func:`metricskit.exposition.exposed_name`):
``http.request.duration_seconds`` is ``http_request_duration_seconds`` to PromQL, a counter
gets ``_total`` and a value in an abbreviated unit is scaled to the base unit, exactly as
``/metrics`` and the Grafana dashboard show it. A matcher on ``__name__`` also accepts the
stored dotted name (``{__name__="http.request.duration_seconds"}``).

The store's key index is listed once per query; each selector's matchers are applied to
the keys, and only the matching series are read, each over the union of the time spans
the query needs from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from metricskit.exposition import exposed_name
from metricskit.model import Selector, SeriesKey
from metricskit.query._plan import VectorSelector
from metricskit.query._values import F64, I64, NAME, Labels
from metricskit.storage.base import StorageBackend

__all__ = ["Fetched", "fetch"]


@dataclass
class Fetched:
    """The series each selector matched: their labels and samples (values scaled)."""

    by_selector: dict[VectorSelector, list[int]] = field(default_factory=dict)
    labels: list[Labels] = field(default_factory=list)
    samples: list[tuple[I64, F64]] = field(default_factory=list)


def _matches(selector: VectorSelector, key: SeriesKey, exposed: str) -> bool:
    for m in selector.matchers:
        if m.label == NAME:
            positive = m.op in ("=", "=~")
            hit_exposed, hit_stored = m.matches(exposed), m.matches(key.name)
            ok = (hit_exposed or hit_stored) if positive else (hit_exposed and hit_stored)
            if not ok:
                return False
        elif not m.matches(key.tags.get(m.label, "")):
            return False
    return True


def fetch(backend: StorageBackend, spans: dict[VectorSelector, tuple[int, int]]) -> Fetched:
    """Read the series ``spans``' selectors match, each over the union of its spans.

    A span is inclusive ``[lo, hi]`` nanoseconds.
    """
    out = Fetched()
    if not spans:
        return out
    keys = sorted(backend.select(Selector()))
    names = {key.name: exposed_name(key.name) for key in {k.name: k for k in keys}.values()}
    wanted: dict[SeriesKey, tuple[int, int]] = {}
    matched: dict[VectorSelector, list[SeriesKey]] = {}
    for selector, (lo, hi) in spans.items():
        hits = [k for k in keys if _matches(selector, k, names[k.name].sample)]
        matched[selector] = hits
        for key in hits:
            old = wanted.get(key)
            wanted[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    row: dict[SeriesKey, int] = {}
    for key, (lo, hi) in wanted.items():
        series = backend.read(key, lo, hi + 1)
        scale = names[key.name].scale
        values = series.values if scale == 1.0 else series.values * scale
        row[key] = len(out.labels)
        name = names[key.name].sample
        out.labels.append(tuple(sorted(((NAME, name), *key.tags.items_tuple))))
        out.samples.append((np.asarray(series.timestamps, dtype=np.int64), values))
    out.by_selector = {sel: [row[k] for k in hits] for sel, hits in matched.items()}
    return out
