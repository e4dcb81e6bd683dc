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
from the catalog. The drawing, gap handling and thinning of long series (to each bucket's
minimum, maximum and gap, which keeps spikes a plain stride would drop) live in
:mod:`metricskit.report._svg_chart`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metricskit._files import atomic_write
from metricskit._time import NS_PER_S
from metricskit.catalog import MetricKind, describe
from metricskit.query.performance import EndpointPerformance, PerformanceIssue, PerformanceSummary
from metricskit.report._svg_chart import Line, render_chart
from metricskit.report.recommendations import Recommendation
from metricskit.report.types import AlertView, Component, HealthReport, SystemValue, TrendRow

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["render_dashboard", "write_dashboard"]

_STATUS_CLASS = {"healthy": "ok", "warning": "warn", "critical": "crit"}
_SEVERITY_CLASS = {
    "info": "info",
    "warning": "warn",
    "critical": "crit",
    "up": "ok",
    "down": "crit",
}
_SHORT_UNITS = {
    "percent": "%",
    "gigabytes": "GB",
    "milliseconds": "ms",
    "seconds": "s",
    "bytes": "B",
}
_REQUEST_PARTS = (
    ("throughput_rps", "Request throughput", "req/s", ("throughput_rps",), 1.0),
    ("error_rate", "Request error rate", "%", ("error_rate",), 100.0),
    ("latency", "Request latency percentiles", "s", ("p50", "p95", "p99"), 1.0),
)


class _Html(str):
    """Markup built here from escaped parts; :func:`_esc` passes it through unchanged."""


def _esc(value: Any) -> str:
    """Every string from data goes through here on its way into the page."""
    if isinstance(value, _Html):
        return value
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, unit: str = "", scale: float = 1.0) -> str:
    """A figure for a table cell; ``—`` for missing or NaN."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else _esc(value)
    if not math.isfinite(value):
        return "—"
    v = value * scale
    if isinstance(value, int) and scale == 1.0:
        text = f"{v:,}"
    elif abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif abs(v) >= 100:
        text = f"{v:.1f}"
    elif abs(v) >= 1 or v == 0:
        text = f"{v:.2f}"
    else:
        text = f"{v:.3g}"
    return f"{text}\u2009{_esc(unit)}" if unit else text


def _count(value: Any) -> str:
    """A count, which may arrive as a float from JSON or numpy."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{int(value):,}"
    return _num(value)


def _when(iso: Any) -> str:
    """An ISO timestamp from the report as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if not isinstance(iso, str):
        return "—"
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:
        return _esc(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _tags(tags: Any) -> str:
    if not isinstance(tags, Mapping) or not tags:
        return "—"
    return _esc(", ".join(f"{k}={v}" for k, v in sorted(tags.items())))


def _badge(text: Any) -> _Html:
    cls = _SEVERITY_CLASS.get(str(text), "info")
    return _Html(f'<span class="badge {cls}">{_esc(text)}</span>')


def _unit(name: str) -> str:
    info = describe(name)
    unit = _SHORT_UNITS.get(info.unit, info.unit)
    if info.kind is MetricKind.COUNTER:
        return f"{unit}/s" if unit else "per second"
    return unit


def _title(section: str) -> str:
    """``system_overview`` -> ``System Overview``; capitals already there are kept."""
    return " ".join(w[:1].upper() + w[1:] for w in section.replace("_", " ").split()) or section


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_esc(empty)}</p>'
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str, extra: str = "") -> str:
    return (
        f'<section id="{_esc(anchor)}" class="card {extra}"><h2>{_esc(title)}</h2>{body}</section>'
    )


# -- report parts ----------------------------------------------------------------------


def _system(system: Mapping[str, SystemValue]) -> str:
    per_host: dict[str, dict[str, float | None]] = {}
    for name, value in system.items():
        per_host[name] = dict(value) if isinstance(value, Mapping) else {"": value}
    hosts = list(dict.fromkeys(h for values in per_host.values() for h in values))
    headers = ["Metric", *(("Value",) if hosts == [""] else (h or "(untagged)" for h in hosts))]
    rows = []
    for name, values in per_host.items():
        label = _Html(f"{_esc(describe(name).description or name)}<small>{_esc(name)}</small>")
        cells = [_Html(_num(values.get(h), _unit(name)) + _bar(name, values.get(h))) for h in hosts]
        rows.append([label, *cells])
    return _table(headers, rows, "No system metrics in the lookback window.")


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
            _badge(c.status),
            _Html(_num(c.response_time_ms, "ms")),
            c.reason,
            _Html(_when(c.checked_at)),
        ]
        for c in components
    ]
    headers = ["Component", "Kind", "Status", "Response", "Reason", "Checked"]
    return _table(headers, rows, "No health or database checks recorded.")


def _alerts(alerts: Sequence[AlertView]) -> str:
    rows = [
        [
            _badge(a.severity),
            a.rule,
            f"{a.state}{' (silenced)' if a.silenced else ''}",
            a.metric,
            _Html(_tags(a.tags)),
            _Html(_num(a.value)),
            _Html(_num(a.threshold)),
            _Html(_when(a.since)),
            a.summary,
        ]
        for a in alerts
    ]
    headers = ["Severity", "Rule", "State", "Metric", "Tags", "Value", "Threshold", "Since"]
    return _table([*headers, "Summary"], rows, "No active alerts.")


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
                _Html(_count(p.count)),
                _Html(_num(p.throughput_rps, "req/s")),
                *(
                    _Html(_num(v, "ms", 1000.0))
                    for v in (p.mean_seconds, pct.get("p50"), pct.get("p95"), pct.get("p99"))
                ),
                _Html(_num(p.error_rate, "%", 100.0)),
                _Html(_count(p.slow_requests)),
            ]
        )
    if not any(p.count > 0 for _, p in entries):
        rows = []
    note = (
        f'<p class="note">Window: {_num((perf.end_ns - perf.start_ns) / NS_PER_S, "s")}</p>'
        if perf is not None
        else ""
    )
    headers = ["Endpoint", "Requests", "Throughput", "Mean", "p50", "p95", "p99", "Errors", "Slow"]
    return note + _table(headers, rows, "No requests in the window.")


def _issues(issues: Sequence[PerformanceIssue]) -> str:
    rows = [
        [i.endpoint, i.figure, _Html(_num(i.value)), _Html(_num(i.threshold)), i.message]
        for i in issues
    ]
    headers = ["Endpoint", "Figure", "Value", "Threshold", "Issue"]
    return _table(headers, rows, "No performance issues detected.")


def _trends(rows_in: Sequence[TrendRow]) -> str:
    rows = []
    for t in rows_in:
        unit = _unit(t.metric)
        if t.note:  # too little history: say so instead of forecasting
            rows.append(
                [
                    t.metric,
                    _Html(_tags(t.tags)),
                    _Html(_num(t.last_value, unit)),
                    "—",
                    _Html(f'<span class="note">{_esc(t.note)}</span>'),
                    "—",
                ]
            )
            continue
        rows.append(
            [
                t.metric,
                _Html(_tags(t.tags)),
                _Html(_num(t.last_value, unit)),
                _Html(_num(t.slope_per_hour, f"{unit}/h")),
                _Html(f"{_num(t.predicted, unit)} in {_esc(t.horizon)}"),
                _Html(
                    "—"
                    if t.crossing_at is None
                    else f'<span class="hot">{_when(t.crossing_at)}</span>'
                    f" ({_num(t.hours_to_threshold, 'h')})"
                ),
            ]
        )
    headers = ["Metric", "Tags", "Now", "Slope", "Forecast", "Reaches 100 %"]
    return _table(headers, rows, "Not enough history for trends.")


def _recommendations(recs: Sequence[Recommendation]) -> str:
    if not recs:
        return '<p class="empty">No recommendations: nothing needs attention.</p>'
    items = []
    for r in recs:
        evidence = "".join(f"<li>{_esc(e)}</li>" for e in r.evidence)
        actions = "".join(f"<li>{_esc(a)}</li>" for a in r.actions)
        items.append(
            f'<div class="rec">{_badge(r.severity)} <strong>{_esc(r.title)}</strong>'
            f'<ul class="evidence">{evidence}</ul><ol class="actions">{actions}</ol></div>'
        )
    return "".join(items)


# -- charts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChartSpec:
    title: str
    metric: str
    unit: str
    lines: list[Line]


def _lines(frame: pd.DataFrame, scale: float = 1.0) -> list[Line]:
    import pandas as pd

    out = []
    for label, part in frame.groupby("series", sort=False):
        ts = pd.DatetimeIndex(part["timestamp"]).as_unit("ns").asi8
        values = part["value"].to_numpy(dtype=np.float64) * scale
        order = np.argsort(ts, kind="stable")
        out.append(Line(str(label), ts[order], values[order]))
    return out


def _base_metric(metric: str) -> str:
    """``http.request.duration_seconds:p95`` -> the histogram it was derived from."""
    base = metric.rsplit(":", 1)[0]
    return base if base != metric and describe(base).kind is MetricKind.HISTOGRAM else metric


def _chart_specs(frame: pd.DataFrame, metrics: Sequence[str] | None) -> Iterator[_ChartSpec]:
    by_metric = (
        {str(m): part for m, part in frame.groupby("metric", sort=False)} if len(frame) else {}
    )
    names = metrics if metrics is not None else list(dict.fromkeys(map(_base_metric, by_metric)))
    for name in names:
        info = describe(name)
        if info.kind is MetricKind.HISTOGRAM:
            for key, title, unit, parts, scale in _REQUEST_PARTS:
                lines = [
                    line
                    for part in parts
                    if f"{name}:{part}" in by_metric
                    for line in _lines(by_metric[f"{name}:{part}"], scale)
                ]
                yield _ChartSpec(title, f"{name}:{key}", unit, lines)
        else:
            part = by_metric.get(name)
            lines = _lines(part) if part is not None else []
            yield _ChartSpec(info.description or name, name, _unit(name), lines)


def _time_range(sections: Mapping[str, pd.DataFrame]) -> tuple[int, int] | None:
    """One time axis for every chart, so charts line up when read down the page."""
    import pandas as pd

    lo, hi = None, None
    for frame in sections.values():
        if len(frame):
            ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
            lo = int(ts.min()) if lo is None else min(lo, int(ts.min()))
            hi = int(ts.max()) if hi is None else max(hi, int(ts.max()))
    return None if lo is None or hi is None else (lo, hi)


def _chart_sections(
    sections: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, Sequence[str]] | None,
    titles: Mapping[str, str],
) -> str:
    span = _time_range(sections)
    out = []
    for section, frame in sections.items():
        configured = None if metrics is None else metrics.get(section)
        figures = []
        for spec in _chart_specs(frame, configured):
            unit = f" ({_esc(spec.unit)})" if spec.unit else ""
            figures.append(
                f'<figure class="chart"><figcaption>{_esc(spec.title)}{unit}'
                f"<small>{_esc(spec.metric)}</small></figcaption>"
                f"{render_chart(spec.lines, span, spec.unit)}</figure>"
            )
        body = (
            f'<p class="note">Times are UTC.</p><div class="charts">{"".join(figures)}</div>'
            if figures
            else ""
        )
        out.append(
            _section(
                f"dashboard-{section}",
                titles.get(section) or _title(section),
                body or '<p class="empty">no data</p>',
                "wide dashboard",
            )
        )
    return "".join(out)


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
        _section("system", "System resources", _system(report.system)),
        _section("components", "Components", _components(report.components)),
        _section("alerts", "Active alerts", _alerts(report.active_alerts), "wide"),
        _section("performance", "Request performance", _performance(report.performance), "wide"),
        _section("issues", "Performance issues", _issues(report.performance_issues), "wide"),
        _section("trends", "Trends and forecasts", _trends(report.trends), "wide"),
        _section(
            "recommendations", "Recommendations", _recommendations(report.recommendations), "wide"
        ),
        _chart_sections(sections, metrics, titles),
    ]
    nav = "".join(
        f'<a href="#{_esc(a)}">{_esc(t)}</a>'
        for a, t in (
            ("system", "System"),
            ("alerts", "Alerts"),
            ("performance", "Performance"),
            ("recommendations", "Recommendations"),
            *((f"dashboard-{s}", titles.get(s) or _title(s)) for s in sections),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)} — {_esc(status)}</title><style>{_CSS}</style></head><body>"
        f'<header class="banner {_STATUS_CLASS.get(status, "info")}"><h1>{_esc(title)}</h1>'
        f'<div class="status">{_esc(status.upper())}</div>'
        f'<div class="generated">Generated {_when(report.generated_at)}</div></header>'
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
