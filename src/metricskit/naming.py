"""Prometheus names and value spelling: one mapping for exposition, Grafana and queries.

A dotted metricskit name becomes a valid Prometheus name by replacing every character
outside ``[a-zA-Z0-9_:]`` with ``_`` (``system.cpu.usage_percent`` ->
``system_cpu_usage_percent``). Prometheus wants base units, so a name whose last part is
an abbreviated unit is exported in the base unit with its value scaled
(``app.health.response_time_ms`` -> ``app_health_response_time_seconds``, value / 1000;
``system.memory.available_gb`` -> ``system_memory_available_bytes``, value * 1024**3).
Counters end in ``_total``. :func:`exposed_name` is the one mapping, so dashboards built
from it query exactly what is exposed, and PromQL selects by it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from metricskit.catalog import MetricKind, describe

__all__ = ["ExposedName", "exposed_name", "format_value"]

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
