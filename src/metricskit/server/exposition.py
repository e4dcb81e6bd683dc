"""The store's latest values in the Prometheus text format 0.0.4 and in OpenMetrics 1.0.

Pure functions of a store: no sockets, no threads (:mod:`metricskit.server.app` serves the result).

Names and values are spelled by :mod:`metricskit.naming`, the one mapping that Grafana
panels and PromQL selectors use too.

Kinds come from :mod:`metricskit.catalog`: gauges export their newest sample; counters
their newest sample as ``_total``; histogram metrics (``http.request.duration_seconds``)
export ``_bucket``/``_sum``/``_count`` from the newest samples of the cumulative counter
parts the Recorder keeps for them (:func:`metricskit.catalog.histogram_parts`), never from
the observations: a scrape costs the same whatever history the store holds, and the
counts only grow, whatever retention or a per-series cap deletes. Tags become labels,
escaped per the format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from metricskit.catalog import DEFAULT_BUCKETS, MetricKind, describe, histogram_of, histogram_parts
from metricskit.model import SeriesKey, Tags
from metricskit.naming import ExposedName, exposed_name, format_value
from metricskit.store import Store

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "DEFAULT_BUCKETS",
    "generate",
]

log = logging.getLogger("metricskit.server.exposition")

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs)
    return f"{{{inner}}}" if inner else ""


def _help(name: str) -> str:
    info = describe(name)
    text = info.description or f"metricskit series {name}"
    return f"{text} (metricskit name: {name})" if info.description else text


def _le_key(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)


def _histogram_lines(store: Store, name: str, sample: str, scale: float) -> list[str]:
    parts = histogram_parts(name)
    sums = {key.tags: (ts, v) for key, ts, v in store.latest(parts.sum)}
    buckets: dict[Tags, list[tuple[int, str, float]]] = {}
    for key, ts, v in store.latest(parts.bucket):
        le = key.tags.get("le")
        if le is not None:
            rest = Tags._trusted(tuple(kv for kv in key.tags.items_tuple if kv[0] != "le"))
            buckets.setdefault(rest, []).append((ts, le, v))
    lines = []
    for key, ts, count in store.latest(parts.count):
        tags = key.tags
        if "le" in tags:
            log.warning("not exposing %s: a histogram series may not carry the tag 'le'", key)
            continue
        # Parts are written together, at one timestamp; a bucket with an older one is
        # left from other bounds and is not part of the current totals.
        current = sorted(
            ((_le_key(le), v) for t, le, v in buckets.get(tags, ()) if t == ts),
            key=lambda bv: bv[0],
        )
        total = sums.get(tags)
        if total is None or total[0] != ts or not current or current[-1][0] != float("inf"):
            log.warning(
                "not exposing %s: its histogram parts are incomplete", SeriesKey(name, tags)
            )
            continue
        pairs = tags.items_tuple
        for bound, value in current:
            le = "+Inf" if bound == float("inf") else format_value(bound * scale)
            lines.append(f"{sample}_bucket{_labels((*pairs, ('le', le)))} {format_value(value)}")
        lines.append(f"{sample}_sum{_labels(pairs)} {format_value(total[1] * scale)}")
        lines.append(f"{sample}_count{_labels(pairs)} {format_value(count)}")
    return lines


def _family_lines(store: Store, name: str, openmetrics: bool) -> list[str]:
    exposed = exposed_name(name)
    type_name = (
        exposed.family
        if openmetrics or exposed.kind is not MetricKind.COUNTER
        else (exposed.sample)
    )
    lines = [
        f"# HELP {type_name} {_escape_help(_help(name))}",
        f"# TYPE {type_name} {exposed.kind.value}",
    ]
    if exposed.kind is MetricKind.HISTOGRAM:
        lines += _histogram_lines(store, name, exposed.family, exposed.scale)
        return lines
    for key, _ts, value in store.latest(name):
        value_text = format_value(value * exposed.scale)
        lines.append(f"{exposed.sample}{_labels(key.tags.items_tuple)} {value_text}")
    return lines


def _exposable(store: Store) -> set[str]:
    """The metric names to expose: a histogram through its counter parts (its
    observations are not read, and may all have been deleted)."""
    found = set()
    for name in {k.name for k in store.series()}:
        base = histogram_of(name)
        if base is not None:
            if name == histogram_parts(base).count:
                found.add(base)
        elif describe(name).kind is not MetricKind.HISTOGRAM:
            found.add(name)
    return found


def _emitted_names(exposed: ExposedName) -> tuple[str, ...]:
    """Every name a metric occupies: its family and each sample name it writes."""
    family = exposed.family
    if exposed.kind is MetricKind.HISTOGRAM:
        return (family, f"{family}_bucket", f"{family}_sum", f"{family}_count")
    return (family, exposed.sample) if exposed.sample != family else (family,)


def generate(
    store: Store,
    openmetrics: bool = False,
    *,
    names: Iterable[str] | None = None,
) -> bytes:
    """Render the store in the Prometheus text format (or OpenMetrics) as UTF-8 bytes.

    ``names`` restricts the output to those metrics. Two metricskit names that map to
    the same Prometheus name (``a.b`` and ``a_b``), or one whose samples would carry the
    other's name (a gauge ``x.y_count`` beside a histogram ``x.y``, whose samples are
    ``x_y_bucket``, ``x_y_sum`` and ``x_y_count``), cannot both be exposed: the first in
    sorted order is, the other is left out with a warning. A histogram series tagged
    ``le`` is left out the same way. Either way the rest of the scrape is unaffected.
    """
    wanted = set(names) if names is not None else None
    metric_names = sorted(n for n in _exposable(store) if wanted is None or n in wanted)
    families: list[bytes] = []
    claimed: dict[str, str] = {}
    for name in metric_names:
        taken = [n for n in _emitted_names(exposed_name(name)) if n in claimed]
        if taken:
            log.warning(
                "not exposing %r: its Prometheus name %r is taken by %r",
                name,
                taken[0],
                claimed[taken[0]],
            )
            continue
        claimed.update(dict.fromkeys(_emitted_names(exposed_name(name)), name))
        try:
            families.append(("\n".join(_family_lines(store, name, openmetrics)) + "\n").encode())
        except ValueError as exc:
            # Data the model no longer accepts (a lone surrogate stored by an older
            # version) costs its own family, not the scrape. A failing store
            # (BackendError) still fails the scrape: an empty 200 would hide it.
            log.error("not exposing %r: %s", name, exc)
    if openmetrics:
        families.append(b"# EOF\n")
    return b"".join(families)
