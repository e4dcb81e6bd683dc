"""The health report as typed, frozen values: what the Reporter returns and every view
(the CLI, the HTML page, ``/api/health``, :class:`~metricskit.service.MonitoringService`)
renders from.

Each type has one ``to_dict()`` giving the JSON users see (``metricskit health -o json``,
``/api/health``, ``health --save``), and a lenient ``from_dict()`` for reading such JSON
back (say, a saved report rendered as HTML): a missing part reads as empty or ``None``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from metricskit._time import NS_PER_S
from metricskit.query.performance import EndpointPerformance, PerformanceIssue, PerformanceSummary
from metricskit.report.recommendations import Recommendation

if TYPE_CHECKING:
    from metricskit.alerting.engine import ActiveAlert
    from metricskit.collect.sources.base import CheckResult

__all__ = [
    "AlertView",
    "CheckSource",
    "Component",
    "DashboardData",
    "DashboardPoint",
    "HealthReport",
    "SystemValue",
    "TrendRow",
]

SystemValue = float | None | Mapping[str, float | None]
"""A system figure: one value, or ``{host: value}`` when the series carry a ``host`` tag."""


def iso(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as an ISO 8601 UTC timestamp (``None`` stays ``None``)."""
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.timezone.utc).isoformat()


def finite(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when missing or not finite (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _opt_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _nan(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


@runtime_checkable
class CheckSource(Protocol):
    """A collector source that checks a component: its tags name it (``check`` for an
    HTTP check, ``database`` for a database) and it keeps its last result, whose
    ``reason`` the report shows for a component that is down."""

    @property
    def tags(self) -> Mapping[str, str]:
        """The tags on the series it records."""

    @property
    def last_result(self) -> CheckResult | None:
        """The newest check result, ``None`` before the first check."""


@dataclass(frozen=True)
class Component:
    """One health check or database: up or down, response time and why."""

    name: str
    kind: str
    """``http`` or ``database``."""
    status: str
    """``up`` or ``down``."""
    reason: str
    response_time_ms: float | None
    checked_at: str | None
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON for this component."""
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "response_time_ms": self.response_time_ms,
            "checked_at": self.checked_at,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Component:
        """Read :meth:`to_dict`'s JSON back; missing keys read as empty."""
        return cls(
            name=str(data.get("name") or ""),
            kind=str(data.get("kind") or ""),
            status=str(data.get("status") or ""),
            reason=str(data.get("reason") or ""),
            response_time_ms=_opt_float(data.get("response_time_ms")),
            checked_at=_opt_str(data.get("checked_at")),
            tags=_str_map(data.get("tags")),
        )


@dataclass(frozen=True)
class AlertView:
    """A pending or firing alert as reports show it: times as ISO strings, enums as
    their values, a non-finite value as ``None``."""

    rule: str
    metric: str
    tags: Mapping[str, str]
    state: str
    severity: str
    value: float | None
    threshold: float | None
    since: str | None
    fired_at: str | None
    silenced: bool
    summary: str

    @classmethod
    def of(cls, alert: ActiveAlert) -> AlertView:
        """The view of one of the rule engine's active alerts."""
        return cls(
            rule=alert.rule,
            metric=alert.metric,
            tags=dict(alert.tags),
            state=alert.state.value,
            severity=alert.severity.value,
            value=finite(alert.value),
            threshold=finite(alert.threshold),  # an expression rule has none (NaN)
            since=iso(alert.since_ns),
            fired_at=iso(alert.fired_at_ns),
            silenced=alert.silenced,
            summary=alert.summary,
        )

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON for this alert."""
        return {
            "rule": self.rule,
            "metric": self.metric,
            "tags": dict(self.tags),
            "state": self.state,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "since": self.since,
            "fired_at": self.fired_at,
            "silenced": self.silenced,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertView:
        """Read :meth:`to_dict`'s JSON back (e.g. from the running service's status file)."""
        return cls(
            rule=str(data.get("rule") or ""),
            metric=str(data.get("metric") or ""),
            tags=_str_map(data.get("tags")),
            state=str(data.get("state") or ""),
            severity=str(data.get("severity") or ""),
            value=_opt_float(data.get("value")),
            threshold=_opt_float(data.get("threshold")),
            since=_opt_str(data.get("since")),
            fired_at=_opt_str(data.get("fired_at")),
            silenced=bool(data.get("silenced")),
            summary=str(data.get("summary") or ""),
        )


@dataclass(frozen=True)
class TrendRow:
    """The slope and forecast of one disk or memory series; ``note`` says why there is
    none when the history is too short."""

    metric: str
    tags: Mapping[str, str]
    samples: int
    span_hours: float | None
    note: str | None
    last_value: float | None
    slope_per_hour: float | None
    predicted: float | None
    horizon: str
    crossing_at: str | None
    """When the forecast reaches 100 %."""
    hours_to_threshold: float | None

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON for this trend."""
        return {
            "metric": self.metric,
            "tags": dict(self.tags),
            "samples": self.samples,
            "span_hours": self.span_hours,
            "note": self.note,
            "last_value": self.last_value,
            "slope_per_hour": self.slope_per_hour,
            "predicted": self.predicted,
            "horizon": self.horizon,
            "crossing_at": self.crossing_at,
            "hours_to_threshold": self.hours_to_threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrendRow:
        """Read :meth:`to_dict`'s JSON back; missing keys read as empty."""
        samples = data.get("samples")
        return cls(
            metric=str(data.get("metric") or ""),
            tags=_str_map(data.get("tags")),
            samples=int(samples) if isinstance(samples, (int, float)) else 0,
            span_hours=_opt_float(data.get("span_hours")),
            note=_opt_str(data.get("note")),
            last_value=_opt_float(data.get("last_value")),
            slope_per_hour=_opt_float(data.get("slope_per_hour")),
            predicted=_opt_float(data.get("predicted")),
            horizon=str(data.get("horizon") or ""),
            crossing_at=_opt_str(data.get("crossing_at")),
            hours_to_threshold=_opt_float(data.get("hours_to_threshold")),
        )


def _endpoint_from_dict(data: Mapping[str, Any]) -> EndpointPerformance:
    pct = data.get("percentiles_seconds")
    return EndpointPerformance(
        endpoint=str(data.get("endpoint") or ""),
        count=int(_nan(data.get("count")) if data.get("count") is not None else 0),
        throughput_rps=_nan(data.get("throughput_rps")),
        mean_seconds=_nan(data.get("mean_seconds")),
        percentiles_seconds={str(k): _nan(v) for k, v in pct.items()}
        if isinstance(pct, Mapping)
        else {},
        error_rate=_nan(data.get("error_rate")),
        errors=int(_nan(data.get("errors")) if data.get("errors") is not None else 0),
        slow_requests=int(
            _nan(data.get("slow_requests")) if data.get("slow_requests") is not None else 0
        ),
    )


def _performance_from_dict(data: Any) -> PerformanceSummary | None:
    if not isinstance(data, Mapping) or not isinstance(data.get("overall"), Mapping):
        return None
    window = _opt_float(data.get("window_seconds")) or 0.0
    endpoints = data.get("endpoints")
    return PerformanceSummary(
        start_ns=0,
        end_ns=round(window * NS_PER_S),
        overall=_endpoint_from_dict(data["overall"]),
        endpoints={str(k): _endpoint_from_dict(v) for k, v in endpoints.items()}
        if isinstance(endpoints, Mapping)
        else {},
    )


def _system_from_dict(data: Any) -> dict[str, SystemValue]:
    if not isinstance(data, Mapping):
        return {}
    return {
        str(name): {str(h): _opt_float(v) for h, v in value.items()}
        if isinstance(value, Mapping)
        else _opt_float(value)
        for name, value in data.items()
    }


def _records(data: Any) -> Sequence[Mapping[str, Any]]:
    return [d for d in data if isinstance(d, Mapping)] if isinstance(data, list) else []


@dataclass(frozen=True)
class HealthReport:
    """The whole health report (:mod:`metricskit.report.reporter` says what decides each part)."""

    generated_at: str | None
    overall_status: str
    """``healthy``, ``warning`` or ``critical``."""
    system: Mapping[str, SystemValue] = field(default_factory=dict)
    components: tuple[Component, ...] = ()
    active_alerts: tuple[AlertView, ...] = ()
    performance: PerformanceSummary | None = None
    """``None`` only in a report read back without its performance part."""
    performance_issues: tuple[PerformanceIssue, ...] = ()
    trends: tuple[TrendRow, ...] = ()
    recommendations: tuple[Recommendation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON (``metricskit health -o json``, ``/api/health``)."""
        return {
            "generated_at": self.generated_at,
            "overall_status": self.overall_status,
            "system": {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.system.items()},
            "components": [c.to_dict() for c in self.components],
            "active_alerts": [a.to_dict() for a in self.active_alerts],
            "performance": None if self.performance is None else self.performance.to_dict(),
            "performance_issues": [i.to_dict() for i in self.performance_issues],
            "trends": [t.to_dict() for t in self.trends],
            "recommendations": [r.to_dict() for r in self.recommendations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthReport:
        """Read :meth:`to_dict`'s JSON back (a saved report); missing parts read as empty."""
        return cls(
            generated_at=_opt_str(data.get("generated_at")),
            overall_status=str(data.get("overall_status") or "unknown"),
            system=_system_from_dict(data.get("system")),
            components=tuple(Component.from_dict(c) for c in _records(data.get("components"))),
            active_alerts=tuple(
                AlertView.from_dict(a) for a in _records(data.get("active_alerts"))
            ),
            performance=_performance_from_dict(data.get("performance")),
            performance_issues=tuple(
                PerformanceIssue(
                    endpoint=str(i.get("endpoint") or ""),
                    figure=str(i.get("figure") or ""),
                    value=_nan(i.get("value")),
                    threshold=_nan(i.get("threshold")),
                    message=str(i.get("message") or ""),
                )
                for i in _records(data.get("performance_issues"))
            ),
            trends=tuple(TrendRow.from_dict(t) for t in _records(data.get("trends"))),
            recommendations=tuple(
                Recommendation(
                    topic=str(r.get("topic") or ""),
                    severity=str(r.get("severity") or ""),
                    title=str(r.get("title") or ""),
                    evidence=tuple(str(e) for e in r.get("evidence") or ()),
                    actions=tuple(str(a) for a in r.get("actions") or ()),
                )
                for r in _records(data.get("recommendations"))
            ),
        )


@dataclass(frozen=True)
class DashboardPoint:
    """One point of a dashboard section (long format)."""

    timestamp: str
    metric: str
    series: str
    value: float | None

    def to_dict(self) -> dict[str, Any]:
        """The dashboard JSON for this point."""
        return {
            "timestamp": self.timestamp,
            "metric": self.metric,
            "series": self.series,
            "value": self.value,
        }


@dataclass(frozen=True)
class DashboardData:
    """The dashboard's points per section, and the titles the config gives sections."""

    generated_at: str | None
    sections: Mapping[str, tuple[DashboardPoint, ...]]
    titles: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """``{"generated_at", "sections": {name: [{...}, ...]}, "titles": {name: title}}``."""
        return {
            "generated_at": self.generated_at,
            "sections": {k: [p.to_dict() for p in v] for k, v in self.sections.items()},
            "titles": dict(self.titles),
        }
