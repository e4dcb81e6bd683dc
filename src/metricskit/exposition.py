"""The store's latest values in the Prometheus text format 0.0.4 and in OpenMetrics 1.0.

Pure functions of a store: no sockets, no threads (``server.py`` serves the result).

Names. A dotted metricskit name becomes a valid Prometheus name by replacing every
character outside ``[a-zA-Z0-9_:]`` with ``_`` (``system.cpu.usage_percent`` ->
``system_cpu_usage_percent``). Prometheus wants base units, so a name whose last part is
an abbreviated unit is exported in the base unit with its value scaled
(``app.health.response_time_ms`` -> ``app_health_response_time_seconds``, value / 1000;
``system.memory.available_gb`` -> ``system_memory_available_bytes``, value * 1024**3).
Counters end in ``_total``. :func:`exposed_name` is the one mapping, so dashboards built
from it query exactly what is exposed.

Kinds come from :mod:`metricskit.catalog`: gauges export their newest sample; counters
their newest sample as ``_total``; histogram metrics (``http.request.duration_seconds``)
have one sample per observation and export cumulative ``_bucket``/``_sum``/``_count``
over every observation the store holds. Tags become labels, escaped per the format.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from metricskit.catalog import MetricKind, describe
from metricskit.model import Series
from metricskit.store import Store

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "DEFAULT_BUCKETS",
    "ExposedName",
    "exposed_name",
    "format_value",
    "generate",
]

log = logging.getLogger("metricskit.exposition")

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Request-duration buckets in seconds, the same as prometheus_client's defaults."""

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_BASE_UNITS: dict[str, tuple[str, float]] = {
    "ns": ("seconds", 1e-9),
    "us": ("seconds", 1e-6),
    "ms": ("seconds", 1e-3),
    "sec": ("seconds", 1.0),
    "kb": ("bytes", 2.0**10),
    "mb": ("bytes", 2.0**20),
    "gb": ("bytes", 2.0**30),
    "tb": ("bytes", 2.0**40),
}


@dataclass(frozen=True)
class ExposedName:
    """How one metricskit metric appears to Prometheus."""

    family: str
    """The metric family (``# TYPE`` name in OpenMetrics; counters without ``_total``)."""
    sample: str
    """The sample name of a gauge or counter (``..._total`` for counters)."""
    kind: MetricKind
    scale: float
    """Multiply stored values by this to get the exported base unit."""


def exposed_name(name: str, kind: MetricKind | None = None) -> ExposedName:
    """Map a metricskit metric name to its Prometheus family and sample names."""
    kind = kind or describe(name).kind
    base = _INVALID.sub("_", name)
    scale = 1.0
    stem, _, last = base.rpartition("_")
    unit = _BASE_UNITS.get(last.lower()) if stem else None
    if unit is not None:
        base, scale = f"{stem}_{unit[0]}", unit[1]
    if kind is MetricKind.COUNTER:
        family = base[: -len("_total")] if base.endswith("_total") else base
        return ExposedName(family, f"{family}_total", kind, scale)
    return ExposedName(base, base, kind, scale)


def format_value(value: float) -> str:
    """A sample value as the formats spell it (``NaN``, ``+Inf``, shortest repr)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value)) + ".0"
    return repr(value)


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


def _histogram_lines(
    sample: str, series: Sequence[Series], buckets: Sequence[float], scale: float
) -> list[str]:
    bounds = np.asarray(buckets, dtype=np.float64)
    lines = []
    for s in series:
        if "le" in s.tags:
            log.warning("not exposing %s: a histogram series may not carry the tag 'le'", s.key)
            continue
        values = s.values[~np.isnan(s.values)] * scale
        slot = np.searchsorted(bounds, values, side="left")
        cumulative = np.cumsum(np.bincount(slot, minlength=len(bounds) + 1))
        tags = s.tags.items_tuple
        for bound, count in zip(bounds.tolist(), cumulative[:-1].tolist(), strict=True):
            lines.append(f"{sample}_bucket{_labels((*tags, ('le', format_value(bound))))} {count}")
        lines.append(f"{sample}_bucket{_labels((*tags, ('le', '+Inf')))} {int(cumulative[-1])}")
        lines.append(f"{sample}_sum{_labels(tags)} {format_value(float(values.sum()))}")
        lines.append(f"{sample}_count{_labels(tags)} {values.size}")
    return lines


def _family_lines(
    store: Store, name: str, openmetrics: bool, buckets: Sequence[float]
) -> list[str]:
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
        lines += _histogram_lines(exposed.family, store.query(name), buckets, exposed.scale)
        return lines
    for key, _ts, value in store.latest(name):
        value_text = format_value(value * exposed.scale)
        lines.append(f"{exposed.sample}{_labels(key.tags.items_tuple)} {value_text}")
    return lines


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
    buckets: Sequence[float] = DEFAULT_BUCKETS,
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
    metric_names = sorted({k.name for k in store.series() if wanted is None or k.name in wanted})
    lines: list[str] = []
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
        lines += _family_lines(store, name, openmetrics, buckets)
    if openmetrics:
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode() if lines else b""
