"""The seed's ``collection:`` config section, mapped onto sources.

::

    collection:
      interval_seconds: 60
      retention_days: 30                 # read by the store's retention, ignored here
      enabled_metrics:
        system: [cpu_usage, memory_usage, disk_usage]
        application: [health_status, response_times]
        business: [ai_api_calls, user_activity]
      intervals:                         # optional, seconds per group
        application: 30

Each ``enabled_metrics`` entry is a group name from :data:`METRIC_GROUPS`, ``all``, or
a full metric name. A group left out of ``enabled_metrics`` is collected entirely; an
empty list turns the group off. ``interval_seconds`` (default 60) applies to every
group unless ``intervals`` overrides it.

Sources need what they measure: HTTP checks need ``app_url`` (the seed's three checks,
:func:`~metricskit.collect.sources.default_http_checks`), the database check needs
``database_url``, business metrics need the ``store`` they derive from. Without it a
group's source is left out (and a debug line logged).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metricskit._time import NS_PER_S, Clock, parse_duration
from metricskit.collect.sources.base import Source
from metricskit.collect.sources.business import BUSINESS_DERIVATIONS, Business
from metricskit.collect.sources.database import DatabaseCheck
from metricskit.collect.sources.http import default_http_checks
from metricskit.collect.sources.system import SYSTEM_METRICS, System
from metricskit.errors import ConfigError, MetricsKitError

__all__ = ["METRIC_GROUPS", "PlannedSource", "plan_sources", "resolve_enabled"]

log = logging.getLogger("metricskit.collect.collector")

_HTTP = ("app.health.status", "app.health.response_time_ms")
_DB = ("db.status", "db.connection_time_ms", "db.connections.active", "db.queries.per_second")

METRIC_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "system": {
        "cpu_usage": ("system.cpu.usage_percent", "system.load.1min"),
        "memory_usage": ("system.memory.usage_percent", "system.memory.available_gb"),
        "disk_usage": ("system.disk.usage_percent", "system.disk.free_gb"),
        "network": ("system.network.bytes_sent", "system.network.bytes_recv"),
        "processes": ("system.processes.count",),
    },
    "application": {
        "health_status": ("app.health.status", "db.status"),
        "response_times": ("app.health.response_time_ms", "db.connection_time_ms"),
        "database": ("db.connections.active", "db.queries.per_second"),
    },
    "business": {
        "ai_api_calls": ("business.ai_calls.total", "business.ai_calls.cost_today"),
        "user_activity": ("business.users.active_sessions",),
        "errors": ("business.errors.rate_per_hour",),
    },
}
"""``enabled_metrics`` names per group and the metrics each enables."""

_ALL = {
    group: tuple(m for names in table.values() for m in names)
    for group, table in METRIC_GROUPS.items()
}
_KEYS = ("interval_seconds", "retention_days", "enabled_metrics", "intervals")


@dataclass(frozen=True)
class PlannedSource:
    """A source to add, its interval in seconds and the metric names to keep."""

    source: Source
    interval_s: float
    only: frozenset[str]


def resolve_enabled(group: str, names: Iterable[str] | None) -> frozenset[str]:
    """The metric names an ``enabled_metrics.<group>`` list enables."""
    if group not in METRIC_GROUPS:
        raise ConfigError(
            f"collection.enabled_metrics: unknown group {group!r}; known: {list(METRIC_GROUPS)}"
        )
    if names is None:
        return frozenset(_ALL[group])
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ConfigError(f"collection.enabled_metrics.{group} must be a list, not {names!r}")
    table = METRIC_GROUPS[group]
    out: set[str] = set()
    for name in names:
        if name == "all":
            out.update(_ALL[group])
        elif name in table:
            out.update(table[name])
        elif name in _ALL[group]:
            out.add(name)
        else:
            choices = [*table, "all", *_ALL[group]]
            hint = difflib.get_close_matches(str(name), choices, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"collection.enabled_metrics.{group}: unknown name {name!r}{did}; "
                f"use one of {[*table, 'all']} or a metric name"
            )
    return frozenset(out)


def _seconds(value: Any, where: str) -> float:
    try:
        ns = parse_duration(value)
    except MetricsKitError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if ns <= 0:
        raise ConfigError(f"{where} must be > 0, got {value!r}")
    return ns / NS_PER_S


def plan_sources(
    collection: Mapping[str, Any],
    *,
    app_url: str | None = None,
    database_url: str | None = None,
    store: Any = None,
    clock: Clock | None = None,
) -> list[PlannedSource]:
    """The sources a ``collection:`` section asks for; see the module docstring."""
    if not isinstance(collection, Mapping):
        raise ConfigError(f"collection must be a mapping, not {type(collection).__name__}")
    for key in collection:
        if key not in _KEYS:
            hint = difflib.get_close_matches(str(key), _KEYS, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"collection: unknown key {key!r}{did}; known: {list(_KEYS)}")
    base = _seconds(collection.get("interval_seconds", 60), "collection.interval_seconds")
    intervals = collection.get("intervals") or {}
    enabled = collection.get("enabled_metrics") or {}
    for what, value in (("intervals", intervals), ("enabled_metrics", enabled)):
        if not isinstance(value, Mapping):
            raise ConfigError(f"collection.{what} must be a mapping, not {value!r}")
        for group in value:
            if group not in METRIC_GROUPS:
                raise ConfigError(
                    f"collection.{what}: unknown group {group!r}; known: {list(METRIC_GROUPS)}"
                )
    wanted = {g: resolve_enabled(g, enabled.get(g)) for g in METRIC_GROUPS}
    every = {
        g: _seconds(intervals[g], f"collection.intervals.{g}") if g in intervals else base
        for g in METRIC_GROUPS
    }
    plan: list[PlannedSource] = []
    system = wanted["system"] & set(SYSTEM_METRICS)
    if system:
        plan.append(PlannedSource(System(metrics=system), every["system"], frozenset(system)))
    app = wanted["application"]
    if app & set(_HTTP):
        if app_url is None:
            log.debug("collection: no app_url, so no HTTP health checks")
        else:
            keep = app & set(_HTTP)
            plan.extend(
                PlannedSource(c, every["application"], keep)
                for c in default_http_checks(app_url, clock=clock)
            )
    if app & set(_DB):
        if database_url is None:
            log.debug("collection: no database_url, so no database check")
        else:
            plan.append(
                PlannedSource(
                    DatabaseCheck(database_url, clock=clock), every["application"], app & set(_DB)
                )
            )
    business = wanted["business"]
    if business:
        if store is None:
            log.debug("collection: no store, so no business metrics")
        else:
            targets = {d.target for d in BUSINESS_DERIVATIONS} & business
            plan.append(
                PlannedSource(
                    Business(store, metrics=targets, clock=clock),
                    every["business"],
                    frozenset(targets),
                )
            )
    return plan
