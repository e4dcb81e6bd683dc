"""The seed's ``collection:`` config section, mapped onto sources.

::

    collection:
      interval_seconds: 60
      retention_days: 30                 # read by the service's retention, ignored here
      enabled_metrics:
        system: [cpu_usage, memory_usage, disk_usage]
        application: [health_status, response_times]
        business: [ai_api_calls, user_activity]
      intervals:                         # optional, seconds per group
        application: 30

Each ``enabled_metrics`` entry is a name from :data:`METRIC_GROUPS`, ``all``, or a full
metric name. A group left out of ``enabled_metrics`` is collected entirely; an
empty list turns the group off. ``interval_seconds`` (default 60) applies to every
group unless ``intervals`` overrides it. :class:`CollectionConfig` is the section's model.

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

from pydantic import Field, ValidationInfo, field_validator

from metricskit._time import Clock
from metricskit._validation import (
    ConfigSection,
    Number,
    PositiveSeconds,
    field_error,
    validate_section,
)
from metricskit.collect.sources.base import Source
from metricskit.collect.sources.business import BUSINESS_DERIVATIONS, Business
from metricskit.collect.sources.database import DatabaseCheck
from metricskit.collect.sources.http import default_http_checks
from metricskit.collect.sources.system import SYSTEM_METRICS, System
from metricskit.errors import ConfigError

__all__ = [
    "METRIC_GROUPS",
    "CollectionConfig",
    "EnabledMetrics",
    "GroupIntervals",
    "PlannedSource",
    "plan_sources",
    "resolve_enabled",
]

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


def _expand(group: str, name: str) -> tuple[str, ...]:
    """The metrics one ``enabled_metrics.<group>`` entry enables; ValueError if none."""
    table = METRIC_GROUPS[group]
    if name == "all":
        return _ALL[group]
    if name in table:
        return table[name]
    if name in _ALL[group]:
        return (name,)
    choices = [*table, "all", *_ALL[group]]
    hint = difflib.get_close_matches(str(name), choices, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"unknown name {name!r}{did}; use one of {[*table, 'all']} or a metric name")


class EnabledMetrics(ConfigSection):
    """``collection.enabled_metrics``: per group, the names to collect (``None``: all)."""

    system: tuple[str, ...] | None = None
    application: tuple[str, ...] | None = None
    business: tuple[str, ...] | None = None

    @field_validator("system", "application", "business", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, str) or not isinstance(value, list | tuple)):
            raise ValueError("must be a list of names")
        return value

    @field_validator("system", "application", "business")
    @classmethod
    def _known_names(cls, value: tuple[str, ...] | None, info: ValidationInfo) -> Any:
        for index, name in enumerate(value or ()):
            try:
                _expand(str(info.field_name), name)
            except ValueError as exc:
                raise field_error(index, str(exc)) from None  # at the list item's line
        return value

    def metrics(self, group: str) -> frozenset[str]:
        """The metric names ``group`` collects."""
        names: tuple[str, ...] | None = getattr(self, group)
        if names is None:
            return frozenset(_ALL[group])
        return frozenset(m for name in names for m in _expand(group, name))


class GroupIntervals(ConfigSection):
    """``collection.intervals``: a group's own interval, overriding ``interval_seconds``."""

    system: PositiveSeconds | None = None
    application: PositiveSeconds | None = None
    business: PositiveSeconds | None = None


class CollectionConfig(ConfigSection):
    """``collection:`` — what the collector measures and how often."""

    interval_seconds: PositiveSeconds = 60.0
    """Seconds between collections of every group (a duration such as ``"1m"`` reads too)."""
    retention_days: Number | None = Field(default=30.0, gt=0)
    """Samples older than this are deleted by the service; ``None`` keeps everything."""
    enabled_metrics: EnabledMetrics = EnabledMetrics()
    intervals: GroupIntervals = GroupIntervals()

    def interval(self, group: str) -> float:
        """Seconds between collections of ``group``."""
        own: float | None = getattr(self.intervals, group)
        return self.interval_seconds if own is None else own


def resolve_enabled(group: str, names: Iterable[str] | None) -> frozenset[str]:
    """The metric names an ``enabled_metrics.<group>`` list enables."""
    if group not in METRIC_GROUPS:
        raise ConfigError(
            f"collection.enabled_metrics: unknown group {group!r}; known: {list(METRIC_GROUPS)}"
        )
    return validate_section(
        EnabledMetrics, {group: names}, ("collection", "enabled_metrics")
    ).metrics(group)


@dataclass(frozen=True)
class PlannedSource:
    """A source to add, its interval in seconds and the metric names to keep."""

    source: Source
    interval_s: float
    only: frozenset[str]


def plan_sources(
    collection: CollectionConfig | Mapping[str, Any] | None,
    *,
    app_url: str | None = None,
    database_url: str | None = None,
    store: Any = None,
    clock: Clock | None = None,
) -> list[PlannedSource]:
    """The sources a ``collection:`` section (its model, or a mapping validated into
    one) asks for; see the module docstring."""
    config = validate_section(CollectionConfig, collection, ("collection",))
    wanted = {g: config.enabled_metrics.metrics(g) for g in METRIC_GROUPS}
    every = {g: config.interval(g) for g in METRIC_GROUPS}
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
