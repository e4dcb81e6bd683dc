"""How the CLI shows things to people: rich tables and the live status screen.

Machines get JSON from the commands themselves; this module is only for terminals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from metricskit.report.types import AlertView, HealthReport, finite

__all__ = [
    "STATUS_STYLE",
    "alerts_table",
    "health_view",
    "metrics_table",
    "status_view",
]

STATUS_STYLE = {"healthy": "bold green", "warning": "bold yellow", "critical": "bold red"}


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def metrics_table(groups: Mapping[str, Mapping[str, Any]]) -> Table:
    """Latest value of each series, grouped by category."""
    table = Table(title="current metrics", expand=False)
    table.add_column("category")
    table.add_column("series")
    table.add_column("value", justify="right")
    for category, series in groups.items():
        for name, value in series.items():
            table.add_row(category, name, _num(value))
    return table


def alerts_table(alerts: Sequence[AlertView], title: str = "active alerts") -> Table:
    """Pending and firing alerts."""
    table = Table(title=title)
    for column in ("severity", "state", "rule", "series", "value", "threshold", "since"):
        table.add_column(column)
    for a in alerts:
        tags = ",".join(f"{k}={v}" for k, v in a.tags.items())
        style = STATUS_STYLE.get(a.severity, "") if a.state == "firing" else "dim"
        table.add_row(
            Text(a.severity, style=style),
            a.state,
            a.rule,
            f"{a.metric}{{{tags}}}" if tags else a.metric,
            _num(a.value),
            _num(a.threshold),
            a.since or "-",
        )
    return table


def health_view(report: HealthReport) -> Group:
    """The health report for a terminal: status, components, alerts, issues, advice."""
    status = report.overall_status
    parts: list[Any] = [
        Panel(
            Text(f"overall status: {status.upper()}", style=STATUS_STYLE.get(status, "")),
            expand=False,
        )
    ]
    if report.system:
        system = Table(title="system resources")
        system.add_column("metric")
        system.add_column("value", justify="right")
        for name, value in report.system.items():
            shown = (
                value
                if not isinstance(value, Mapping)
                else ", ".join(f"{h}: {_num(v)}" for h, v in value.items())
            )
            system.add_row(name, _num(shown))
        parts.append(system)
    if report.components:
        components = Table(title="components")
        for column in ("name", "kind", "status", "response ms", "reason"):
            components.add_column(column)
        for c in report.components:
            style = "green" if c.status == "up" else "bold red"
            components.add_row(
                c.name, c.kind, Text(c.status, style=style), _num(c.response_time_ms), c.reason
            )
        parts.append(components)
    if report.active_alerts:
        parts.append(alerts_table(report.active_alerts))
    perf = report.performance.overall if report.performance is not None else None
    if perf is not None and perf.count:
        parts.append(
            Text(
                f"requests: {perf.count} ({_num(finite(perf.throughput_rps))}/s), mean "
                f"{_num(finite(perf.mean_seconds))} s, "
                f"p95 {_num(finite(perf.percentiles_seconds.get('p95')))} s, "
                f"errors {_num((finite(perf.error_rate) or 0) * 100)} %"
            )
        )
    for issue in report.performance_issues:
        parts.append(Text(f"! {issue.message}", style="yellow"))
    for rec in report.recommendations:
        body = "\n".join([*(f"- {e}" for e in rec.evidence), *(f"> {a}" for a in rec.actions)])
        parts.append(
            Panel(
                body,
                title=f"{rec.severity}: {rec.title}",
                border_style=STATUS_STYLE.get(rec.severity, ""),
                expand=False,
            )
        )
    return Group(*parts)


def status_view(status: Mapping[str, Any], latest: Mapping[str, Mapping[str, Any]]) -> Group:
    """The one-screen live status ``metricskit start`` shows."""
    started = status.get("started_at")
    since = dt.datetime.fromtimestamp(started).strftime("%H:%M:%S") if started else "-"
    uptime = status.get("uptime_seconds") or 0.0
    storage = status.get("storage", {})
    head = Text(
        f"metricskit running since {since} (up {uptime:,.0f} s, every "
        f"{_num(status.get('interval_seconds'))} s)  store {status.get('store')}  "
        f"samples {storage.get('samples', 0):,}  series {storage.get('series', 0):,}  "
        f"dropped {status.get('recorder', {}).get('dropped', 0)}   Ctrl-C stops",
        style="bold",
    )
    sources = Table(title="sources")
    for column in ("source", "runs", "errors", "skipped", "last"):
        sources.add_column(column)
    for name, stats in status.get("collector", {}).items():
        sources.add_row(
            name,
            _num(stats.get("runs")),
            _num(stats.get("errors")),
            _num(stats.get("skipped")),
            str(stats.get("last_error") or "ok"),
        )
    alerts = [AlertView.from_dict(a) for a in status.get("active_alerts", [])]
    return Group(head, sources, alerts_table(alerts), metrics_table(latest))
