"""Recommendations tied to what a health report found.

The seed's Troubleshooting section is the starting list (high memory, a failing health
check, slow responses), extended with the other problems a report can see. A *finding*
is a problem with its evidence; each topic has one recommendation listing actions, so
three hosts low on memory give one recommendation with three pieces of evidence.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metricskit.query.performance import PerformanceIssue

if TYPE_CHECKING:
    from metricskit.report.types import AlertView, Component, SystemValue, TrendRow

__all__ = ["PLAYBOOK", "Finding", "Recommendation", "overall_status", "recommend"]


@dataclass(frozen=True)
class Recommendation:
    """What to do about one kind of problem, and the evidence that it is happening."""

    topic: str
    severity: str
    title: str
    evidence: tuple[str, ...]
    actions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "topic": self.topic,
            "severity": self.severity,
            "title": self.title,
            "evidence": list(self.evidence),
            "actions": list(self.actions),
        }


PLAYBOOK: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "high_memory": (
        "High memory usage",
        (
            "Check for memory leaks in the application",
            "Review long-running processes",
            "Consider increasing system memory",
        ),
    ),
    "health_check_failing": (
        "Application health check failing",
        (
            "Check application logs",
            "Verify database connectivity",
            "Restart the application if necessary",
        ),
    ),
    "slow_responses": (
        "High response times",
        (
            "Check database performance",
            "Review recent deployments",
            "Analyze slow query logs",
        ),
    ),
    "high_error_rate": (
        "High error rate",
        (
            "Check application logs for the failing endpoints",
            "Review recent deployments and roll back if they correlate",
            "Check the health of downstream services and the database",
        ),
    ),
    "endpoint_degraded": (
        "Endpoint slower than its baseline",
        (
            "Compare recent deployments touching the endpoint",
            "Check the endpoint's queries and external calls",
            "Profile the endpoint under current traffic",
        ),
    ),
    "database_down": (
        "Database unreachable",
        (
            "Check that the database server is running and reachable",
            "Verify credentials and connection limits",
            "Check the database server's logs",
        ),
    ),
    "high_cpu": (
        "High CPU usage",
        (
            "Identify the processes using the CPU",
            "Check for runaway loops or load spikes",
            "Consider scaling out or up",
        ),
    ),
    "disk_filling": (
        "Disk filling up",
        (
            "Clean up old data (metricskit cleanup --days N) and logs",
            "Find the largest directories and files",
            "Plan more disk before the forecast date",
        ),
    ),
    "alert_firing": (
        "Alerts firing",
        (
            "Review the firing alerts and their runbooks",
            "Silence alerts that are understood while fixing them",
        ),
    ),
}
"""Each topic's title and actions."""

_ORDER = {"critical": 0, "warning": 1, "info": 2}
_ALERT_TOPICS = {
    "system.memory.usage_percent": "high_memory",
    "system.cpu.usage_percent": "high_cpu",
    "system.disk.usage_percent": "disk_filling",
    "app.health.status": "health_check_failing",
    "app.health.response_time_ms": "slow_responses",
    "db.status": "database_down",
}
_ISSUE_TOPICS = {
    "mean_seconds": "slow_responses",
    "p95_seconds": "slow_responses",
    "error_rate": "high_error_rate",
    "p95_degradation": "endpoint_degraded",
}
# (metric, topic, above) for a current system figure no alert rule watches: advice only
# ("info"), since one instantaneous value is no alert; a rule's threshold and duration
# decide the status (and the recommendation) of the metrics it watches
_RESOURCE_LIMITS = (
    ("system.memory.usage_percent", "high_memory", 90.0),
    ("system.cpu.usage_percent", "high_cpu", 80.0),
    ("system.disk.usage_percent", "disk_filling", 90.0),
)
_DISK_FULL_SOON_HOURS = 24.0


@dataclass(frozen=True)
class Finding:
    """One problem a report saw: its topic, how bad, and the evidence in words."""

    topic: str
    severity: str
    evidence: str

    @classmethod
    def collect(
        cls,
        system: Mapping[str, SystemValue],
        components: Sequence[Component],
        alerts: Sequence[AlertView],
        issues: Sequence[PerformanceIssue],
        trend_rows: Sequence[TrendRow],
        watched: Collection[str] = (),
    ) -> list[Finding]:
        """Turn a report's parts into findings.

        ``watched`` are the metrics alert rules cover: for those, only a firing alert is
        a finding, so a recommendation never contradicts the rules (and the overall
        status, :func:`overall_status`, which comes from the same findings).
        """
        found: list[Finding] = []
        for metric, topic, limit in _RESOURCE_LIMITS:
            if metric in watched:
                continue
            for where, value in _per_host(system.get(metric)):
                if value is not None and value > limit:
                    found.append(cls(topic, "info", f"{metric} = {value:.1f}%{where}"))
        for c in components:
            if c.status == "down":
                topic = "health_check_failing" if c.kind == "http" else "database_down"
                # a check down with no alert firing for it is a warning; an alert on it
                # (below) carries its own severity
                found.append(cls(topic, "warning", f"{c.kind} check {c.name}: {c.reason}"))
        for a in alerts:
            if a.state != "firing":
                continue
            topic = _ALERT_TOPICS.get(a.metric, "alert_firing")
            # an expression rule has no metric or threshold: its summary says what is wrong
            what = (
                f"{a.metric} = {a.value} (threshold {a.threshold})"
                if a.metric
                else f"{a.summary or a.rule} (value {a.value})"
            )
            found.append(cls(topic, a.severity, f"alert {a.rule}: {what}"))
        for issue in issues:
            found.append(
                cls(_ISSUE_TOPICS.get(issue.figure, "slow_responses"), "warning", issue.message)
            )
        for row in trend_rows:
            hours = row.hours_to_threshold
            if (
                row.metric == "system.disk.usage_percent"
                and hours is not None
                and (hours <= _DISK_FULL_SOON_HOURS)
            ):
                # a forecast is advice, not a problem yet: it does not change the status
                found.append(
                    cls(
                        "disk_filling",
                        "info",
                        f"disk forecast to be full in {hours:.1f} h ({row.crossing_at})",
                    )
                )
        return found


def overall_status(findings: Iterable[Finding]) -> str:
    """``critical`` if any finding is critical, else ``warning`` if any is, else ``healthy``.

    The findings are what the recommendations are made of, so the status and the
    recommendations never disagree (no critical advice under a healthy banner).
    """
    severities = {f.severity for f in findings}
    if "critical" in severities:
        return "critical"
    return "warning" if "warning" in severities else "healthy"


def _per_host(value: SystemValue) -> Iterable[tuple[str, float | None]]:
    if isinstance(value, Mapping):
        return ((f" on {host}", v) for host, v in value.items())
    return (("", value),)


def recommend(findings: Iterable[Finding]) -> list[Recommendation]:
    """One recommendation per topic found, most severe first."""
    by_topic: dict[str, list[Finding]] = {}
    for finding in findings:
        by_topic.setdefault(finding.topic, []).append(finding)
    out = []
    for topic, items in by_topic.items():
        title, actions = PLAYBOOK[topic]
        severity = min((f.severity for f in items), key=lambda s: _ORDER.get(s, 3))
        evidence = tuple(dict.fromkeys(f.evidence for f in items))
        out.append(Recommendation(topic, severity, title, evidence, actions))
    out.sort(key=lambda r: (_ORDER.get(r.severity, 3), r.topic))
    return out
