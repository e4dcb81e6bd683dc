"""What the well-known metrics are: kind, unit and description.

The seed's three tables (system, application, business) plus the request and self-monitoring
series metricskit writes. Exposition uses the kind (gauge, counter, histogram) and the
description for ``# TYPE``/``# HELP``; dashboards and reports use units and descriptions.
A name not listed here is a gauge unless it ends in ``.total``/``_total`` (a counter).

Histograms. A histogram metric holds one sample per observation; the Recorder also keeps,
per series, three cumulative counter parts (:func:`histogram_parts`): ``<name>:bucket``
(one series per upper bound, tagged ``le``), ``<name>:sum`` and ``<name>:count``. They
only grow, whatever retention or a per-series cap deletes from the observations, and
``/metrics`` reads their newest samples instead of the observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = [
    "CATALOG",
    "DEFAULT_BUCKETS",
    "DEFAULT_DASHBOARD_SECTIONS",
    "SYSTEM_METRICS",
    "HistogramParts",
    "MetricInfo",
    "MetricKind",
    "describe",
    "histogram_of",
    "histogram_parts",
]


class MetricKind(str, Enum):
    """How a series' values behave over time."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    """Raw observations (one sample per event) exported as a Prometheus histogram."""


@dataclass(frozen=True)
class MetricInfo:
    """Kind, unit and a one-line description of a metric."""

    kind: MetricKind
    unit: str
    description: str


_G, _C, _H = MetricKind.GAUGE, MetricKind.COUNTER, MetricKind.HISTOGRAM

CATALOG = MappingProxyType(
    {
        "system.cpu.usage_percent": MetricInfo(_G, "percent", "CPU utilization"),
        "system.memory.usage_percent": MetricInfo(_G, "percent", "Memory utilization"),
        "system.memory.available_gb": MetricInfo(_G, "gigabytes", "Available memory"),
        "system.disk.usage_percent": MetricInfo(_G, "percent", "Disk utilization"),
        "system.disk.free_gb": MetricInfo(_G, "gigabytes", "Available disk space"),
        "system.load.1min": MetricInfo(_G, "", "1-minute load average"),
        "system.network.bytes_sent": MetricInfo(_C, "bytes", "Network bytes sent"),
        "system.network.bytes_recv": MetricInfo(_C, "bytes", "Network bytes received"),
        "system.processes.count": MetricInfo(_G, "", "Total process count"),
        "app.health.status": MetricInfo(_G, "", "Application health status (1 up, 0 down)"),
        "app.health.response_time_ms": MetricInfo(
            _G, "milliseconds", "Health endpoint response time"
        ),
        "db.status": MetricInfo(_G, "", "Database connectivity status (1 up, 0 down)"),
        "db.connection_time_ms": MetricInfo(_G, "milliseconds", "Database connection time"),
        "db.connections.active": MetricInfo(_G, "", "Active database connections"),
        "db.queries.per_second": MetricInfo(_G, "per second", "Database queries per second"),
        "business.users.active_sessions": MetricInfo(_G, "", "Active user sessions"),
        "business.ai_calls.total": MetricInfo(_C, "", "Total AI API calls"),
        "business.ai_calls.cost_today": MetricInfo(_G, "USD", "AI API costs today"),
        "business.errors.rate_per_hour": MetricInfo(_G, "per hour", "Error rate per hour"),
        "http.request.duration_seconds": MetricInfo(
            _H, "seconds", "HTTP request durations by endpoint, method and status"
        ),
        "metricskit.recorder.dropped": MetricInfo(
            _C, "", "Samples the recorder dropped because its buffer was full"
        ),
        "metricskit.collector.duration_seconds": MetricInfo(
            _G, "seconds", "Time one collection pass of a source took"
        ),
    }
)
"""The well-known metrics by name (read-only)."""

_NOT_HISTOGRAM = MetricInfo(_G, "", "")


SYSTEM_METRICS: tuple[str, ...] = tuple(n for n in CATALOG if n.startswith("system."))
"""The seed's system metrics, in the seed's order (the System source produces these)."""


DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Histogram upper bounds (``le``) in the metric's unit, as prometheus_client's defaults."""


@dataclass(frozen=True)
class HistogramParts:
    """The cumulative counter series kept for one histogram metric."""

    bucket: str
    """Observations ``<=`` each bound; one series per bound, tagged ``le``."""
    sum: str
    """The sum of the observations."""
    count: str
    """The number of observations (NaN is not an observation)."""


_PART_SUFFIXES = (":bucket", ":sum", ":count")


def histogram_parts(name: str) -> HistogramParts:
    """The names of the counter series kept for histogram metric ``name``."""
    return HistogramParts(*(name + suffix for suffix in _PART_SUFFIXES))


def histogram_of(name: str) -> str | None:
    """The histogram metric whose part ``name`` is, or ``None``."""
    base, sep, suffix = name.rpartition(":")
    if sep and f":{suffix}" in _PART_SUFFIXES and CATALOG.get(base, _NOT_HISTOGRAM).kind is _H:
        return base
    return None


def describe(name: str) -> MetricInfo:
    """The catalog entry for ``name``, or the inferred default for an unknown metric."""
    info = CATALOG.get(name)
    if info is not None:
        return info
    base = histogram_of(name)
    if base is not None:
        part = name.rpartition(":")[2]
        return MetricInfo(_C, CATALOG[base].unit if part == "sum" else "", f"{part} of {base}")
    kind = _C if name.endswith((".total", "_total")) else _G
    return MetricInfo(kind, "", "")


DEFAULT_DASHBOARD_SECTIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "system_overview": (
            "system.cpu.usage_percent",
            "system.memory.usage_percent",
            "system.disk.usage_percent",
            "system.load.1min",
            "system.network.bytes_sent",
            "system.network.bytes_recv",
        ),
        "application_health": (
            "app.health.status",
            "app.health.response_time_ms",
            "db.status",
            "db.connection_time_ms",
        ),
        "performance_metrics": ("http.request.duration_seconds",),
        "business_metrics": (
            "business.users.active_sessions",
            "business.ai_calls.total",
            "business.ai_calls.cost_today",
            "business.errors.rate_per_hour",
        ),
    }
)
"""The seed's four dashboard sections and their metrics, used when none are configured."""
