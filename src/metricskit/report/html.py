"""The health report and dashboard frames as one self-contained HTML page.

:func:`render_dashboard` turns :meth:`Reporter.health_report
<metricskit.report.reporter.Reporter.health_report>` (a typed
:class:`~metricskit.report.types.HealthReport`) and :meth:`Reporter.dashboard
<metricskit.report.reporter.Reporter.dashboard>` into a single file that works offline: inline CSS,
charts drawn here as inline SVG, no script, no font, no image from anywhere. A
Content-Security-Policy of ``default-src 'none'`` makes the browser refuse any fetch, so
a string that slipped past escaping still could not load anything.

Each configured metric gets one time-series chart (a request histogram gets three:
throughput, error rate and latency percentiles): a polyline per series, NaN breaking the
line, time ticks in UTC, value ticks, a legend with each series' last value and the unit
from the catalog. This module lays out the page and the report's tables; the chart
sections are :mod:`metricskit.report._html_charts`'s, and the drawing, gap handling and
thinning of long series (to each bucket's minimum, maximum and gap, which keeps spikes a
plain stride would drop) :mod:`metricskit.report._svg_chart`'s. Escaping and number
formatting, shared by both, live in :mod:`metricskit.report._html_format`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from metricskit._files import atomic_write
from metricskit._time import NS_PER_S
from metricskit.catalog import describe
from metricskit.query.performance import EndpointPerformance, PerformanceIssue, PerformanceSummary
from metricskit.report._html_charts import chart_sections
from metricskit.report._html_format import (
    STATUS_CLASS,
    Html,
    badge,
    card,
    count,
    esc,
    num,
    section_title,
    short_unit,
    table,
    tag_text,
    when,
)
from metricskit.report.recommendations import Recommendation
from metricskit.report.types import AlertView, Component, HealthReport, SystemValue, TrendRow

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["render_dashboard", "write_dashboard"]


# -- report parts ----------------------------------------------------------------------


def _system(system: Mapping[str, SystemValue]) -> str:
    per_host: dict[str, dict[str, float | None]] = {}
    for name, value in system.items():
        per_host[name] = dict(value) if isinstance(value, Mapping) else {"": value}
    hosts = list(dict.fromkeys(h for values in per_host.values() for h in values))
    headers = ["Metric", *(("Value",) if hosts == [""] else (h or "(untagged)" for h in hosts))]
    rows = []
    for name, values in per_host.items():
        label = Html(f"{esc(describe(name).description or name)}<small>{esc(name)}</small>")
        cells = [
            Html(num(values.get(h), short_unit(name)) + _bar(name, values.get(h))) for h in hosts
        ]
        rows.append([label, *cells])
    return table(headers, rows, "No system metrics in the lookback window.")


def _bar(name: str, value: Any) -> str:
    """A usage bar under percentages; amber from 75 %, red from 90 %."""
    if describe(name).unit != "percent" or not isinstance(value, (int, float)):
        return ""
    if not math.isfinite(value):
        return ""
    level = "crit" if value >= 90 else "warn" if value >= 75 else "ok"
    width = min(max(value, 0.0), 100.0)
    return f'<span class="bar"><span class="{level}" style="width:{width:.1f}%"></span></span>'


def _components(components: Sequence[Component]) -> str:
    rows = [
        [
            c.name,
            c.kind,
            badge(c.status),
            Html(num(c.response_time_ms, "ms")),
            c.reason,
            Html(when(c.checked_at)),
        ]
        for c in components
    ]
    headers = ["Component", "Kind", "Status", "Response", "Reason", "Checked"]
    return table(headers, rows, "No health or database checks recorded.")


def _alerts(alerts: Sequence[AlertView]) -> str:
    rows = [
        [
            badge(a.severity),
            a.rule,
            f"{a.state}{' (silenced)' if a.silenced else ''}",
            a.metric,
            Html(tag_text(a.tags)),
            Html(num(a.value)),
            Html(num(a.threshold)),
            Html(when(a.since)),
            a.summary,
        ]
        for a in alerts
    ]
    headers = ["Severity", "Rule", "State", "Metric", "Tags", "Value", "Threshold", "Since"]
    return table([*headers, "Summary"], rows, "No active alerts.")


def _performance(perf: PerformanceSummary | None) -> str:
    entries: list[tuple[str, EndpointPerformance]] = []
    if perf is not None:
        entries.append(("All endpoints", perf.overall))
        entries += sorted(perf.endpoints.items())
    rows = []
    for label, p in entries:
        pct = p.percentiles_seconds
        rows.append(
            [
                label,
                Html(count(p.count)),
                Html(num(p.throughput_rps, "req/s")),
                *(
                    Html(num(v, "ms", 1000.0))
                    for v in (p.mean_seconds, pct.get("p50"), pct.get("p95"), pct.get("p99"))
                ),
                Html(num(p.error_rate, "%", 100.0)),
                Html(count(p.slow_requests)),
            ]
        )
    if not any(p.count > 0 for _, p in entries):
        rows = []
    note = (
        f'<p class="note">Window: {num((perf.end_ns - perf.start_ns) / NS_PER_S, "s")}</p>'
        if perf is not None
        else ""
    )
    headers = ["Endpoint", "Requests", "Throughput", "Mean", "p50", "p95", "p99", "Errors", "Slow"]
    return note + table(headers, rows, "No requests in the window.")


def _issues(issues: Sequence[PerformanceIssue]) -> str:
    rows = [
        [i.endpoint, i.figure, Html(num(i.value)), Html(num(i.threshold)), i.message]
        for i in issues
    ]
    headers = ["Endpoint", "Figure", "Value", "Threshold", "Issue"]
    return table(headers, rows, "No performance issues detected.")


def _trends(rows_in: Sequence[TrendRow]) -> str:
    rows = []
    for t in rows_in:
        unit = short_unit(t.metric)
        if t.note:  # too little history: say so instead of forecasting
            rows.append(
                [
                    t.metric,
                    Html(tag_text(t.tags)),
                    Html(num(t.last_value, unit)),
                    "—",
                    Html(f'<span class="note">{esc(t.note)}</span>'),
                    "—",
                ]
            )
            continue
        rows.append(
            [
                t.metric,
                Html(tag_text(t.tags)),
                Html(num(t.last_value, unit)),
                Html(num(t.slope_per_hour, f"{unit}/h")),
                Html(f"{num(t.predicted, unit)} in {esc(t.horizon)}"),
                Html(
                    "—"
                    if t.crossing_at is None
                    else f'<span class="hot">{when(t.crossing_at)}</span>'
                    f" ({num(t.hours_to_threshold, 'h')})"
                ),
            ]
        )
    headers = ["Metric", "Tags", "Now", "Slope", "Forecast", "Reaches 100 %"]
    return table(headers, rows, "Not enough history for trends.")


def _recommendations(recs: Sequence[Recommendation]) -> str:
    if not recs:
        return '<p class="empty">No recommendations: nothing needs attention.</p>'
    items = []
    for r in recs:
        evidence = "".join(f"<li>{esc(e)}</li>" for e in r.evidence)
        actions = "".join(f"<li>{esc(a)}</li>" for a in r.actions)
        items.append(
            f'<div class="rec">{badge(r.severity)} <strong>{esc(r.title)}</strong>'
            f'<ul class="evidence">{evidence}</ul><ol class="actions">{actions}</ol></div>'
        )
    return "".join(items)


# -- page ----------------------------------------------------------------------------------


def render_dashboard(
    report: HealthReport | Mapping[str, Any],
    sections: Mapping[str, pd.DataFrame],
    *,
    title: str = "metricskit",
    metrics: Mapping[str, Sequence[str]] | None = None,
    section_titles: Mapping[str, str] | None = None,
) -> str:
    """The whole dashboard as one HTML document (a ``str``), needing no network to display.

    ``report`` is a :class:`~metricskit.report.types.HealthReport` or its JSON as a dict
    (a saved report; missing parts render as empty), ``sections`` the ``{section: DataFrame}`` of
    dashboard frames (columns timestamp, metric, series, value). ``metrics`` lists each
    section's configured metrics, so one with no samples still gets its chart showing
    "no data"; without it the charts are the metrics found in the frames.
    ``section_titles`` (``dashboard.sections.<name>.title``) heads a section; without
    one the title is made from its key (``system_overview`` -> "System Overview").
    """
    titles = section_titles or {}
    if not isinstance(report, HealthReport):
        report = HealthReport.from_dict(report)
    status = report.overall_status or "unknown"
    parts = [
        card("system", "System resources", _system(report.system)),
        card("components", "Components", _components(report.components)),
        card("alerts", "Active alerts", _alerts(report.active_alerts), "wide"),
        card("performance", "Request performance", _performance(report.performance), "wide"),
        card("issues", "Performance issues", _issues(report.performance_issues), "wide"),
        card("trends", "Trends and forecasts", _trends(report.trends), "wide"),
        card(
            "recommendations", "Recommendations", _recommendations(report.recommendations), "wide"
        ),
        chart_sections(sections, metrics, titles),
    ]
    nav = "".join(
        f'<a href="#{esc(a)}">{esc(t)}</a>'
        for a, t in (
            ("system", "System"),
            ("alerts", "Alerts"),
            ("performance", "Performance"),
            ("recommendations", "Recommendations"),
            *((f"dashboard-{s}", titles.get(s) or section_title(s)) for s in sections),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} — {esc(status)}</title><style>{_CSS}</style></head><body>"
        f'<header class="banner {STATUS_CLASS.get(status, "info")}"><h1>{esc(title)}</h1>'
        f'<div class="status">{esc(status.upper())}</div>'
        f'<div class="generated">Generated {when(report.generated_at)}</div></header>'
        f"<nav>{nav}</nav><main>{''.join(parts)}</main></body></html>\n"
    )


def write_dashboard(page: str, path: str | os.PathLike[str]) -> None:
    """Write ``page`` to ``path`` atomically, so a server reading it never sees half a page."""
    atomic_write(path, page)


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2933;background:#f4f6f8}
.banner{display:flex;align-items:baseline;gap:24px;padding:16px 28px;color:#fff}
.banner h1{margin:0;font-size:22px}.banner .status{font-size:20px;font-weight:700;
letter-spacing:.06em}.banner .generated{margin-left:auto;opacity:.9}
.banner.ok{background:#2e7d32}.banner.warn{background:#c77700}.banner.crit{background:#c62828}
.banner.info{background:#546e7a}
nav{display:flex;flex-wrap:wrap;gap:16px;padding:8px 28px;background:#fff;
border-bottom:1px solid #dde3e8}nav a{color:#35608a;text-decoration:none}
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px;padding:16px 28px}
.card{background:#fff;border:1px solid #dde3e8;border-radius:6px;padding:12px 16px;min-width:0}
.card.wide{grid-column:1/-1}
h2{margin:0 0 8px;font-size:16px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf0f2;vertical-align:top;
overflow-wrap:anywhere}
th{font-weight:600;color:#52606d;font-size:12px;text-transform:uppercase;white-space:nowrap}
td small,figcaption small{display:block;color:#7b8794;font-size:11px}
.badge{display:inline-block;white-space:nowrap;padding:0 8px;border-radius:10px;font-size:12px;
font-weight:600;color:#fff}.badge.ok{background:#2e7d32}.badge.warn{background:#c77700}
.badge.crit{background:#c62828}.badge.info{background:#546e7a}
.bar{display:block;height:5px;width:120px;background:#edf0f2;border-radius:3px;margin-top:2px}
.bar span{display:block;height:100%;border-radius:3px}.bar .ok{background:#2e7d32}
.bar .warn{background:#c77700}.bar .crit{background:#c62828}
.hot{color:#c62828;font-weight:600}.empty,.note{color:#7b8794;margin:4px 0}
.rec{padding:8px 0;border-bottom:1px solid #edf0f2}.rec ul,.rec ol{margin:4px 0 0}
.evidence{color:#52606d}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}
.chart{margin:0;min-width:0}.chart figcaption{font-weight:600}
.chart svg{width:100%;height:auto;display:block}
.chart .grid{stroke:#edf0f2}.chart .axis{stroke:#9aa5b1}
.chart text{font-size:11px;fill:#52606d}
.chart polyline{fill:none;stroke-width:2;stroke-linejoin:round}
.nodata{display:flex;align-items:center;justify-content:center;height:120px;
color:#9aa5b1;background:#fafbfc;border:1px dashed #dde3e8}
.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;
font-size:12px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;
vertical-align:middle}
@media (max-width:900px){main,.charts{grid-template-columns:minmax(0,1fr)}}
"""
