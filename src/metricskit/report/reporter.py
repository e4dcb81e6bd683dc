"""Reporter: the health report, dashboard frames and their JSON, read from a store.

Everything comes from the store (plus the rule engine's alert state, itself persisted in
the store), so ``metricskit health`` in one process reports on what ``metricskit start``
collects in another. Check results held in memory by a collector running in this process
add the reason a component is down.

Overall status and recommendations come from the same findings
(:func:`metricskit.report.recommendations.overall_status`): any critical finding -> ``critical``;
else any warning -> ``warning``; else ``healthy``. Findings with a severity are firing
alerts (the rule's severity), a component that is down (``warning``: the seed's "healthy"
means all checks pass) and request performance past ``performance.thresholds``
(``warning``). Advice (``info``) leaves the status alone: a forecast (disk full within a
day, made only from ``trend_min_span`` of history) and, for a system metric no alert rule
watches, a current value past a built-in limit (memory and disk 90 %, CPU 80 %).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from metricskit._time import NS_PER_S, Clock, SystemClock, parse_duration
from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS, SYSTEM_METRICS, MetricKind, describe
from metricskit.query import performance
from metricskit.report import trends
from metricskit.report.recommendations import Finding, overall_status, recommend
from metricskit.report.types import (
    AlertView,
    CheckSource,
    Component,
    DashboardData,
    DashboardPoint,
    HealthReport,
    SystemValue,
    TrendRow,
    finite,
    iso,
)
from metricskit.store import Store

if TYPE_CHECKING:
    import os

    import pandas as pd

    from metricskit.alerting.engine import RuleEngine
    from metricskit.collect.collector import Collector

__all__ = ["ReportSettings", "Reporter"]

_COMPONENT_METRICS = {"app.health.status": ("http", "check"), "db.status": ("database", "database")}
_REQUEST_STATS = ("throughput_rps", "error_rate", "p50", "p95", "p99")


@dataclass(frozen=True)
class ReportSettings:
    """What the Reporter looks at; the config file's ``dashboard`` and ``performance``."""

    sections: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: dict(DEFAULT_DASHBOARD_SECTIONS)
    )
    section_titles: Mapping[str, str] = field(default_factory=dict)
    """A title per section (``dashboard.sections.<name>.title``); others get one from
    their key."""
    performance_window: str = "5m"
    thresholds: performance.PerformanceThresholds = field(
        default_factory=performance.PerformanceThresholds
    )
    lookback: str = "10m"
    """How old a latest value may be to count as current."""
    trend_window: str = "6h"
    forecast_horizon: str = "24h"
    trend_min_span: str = "1h"
    """Samples must span at least this long for a trend to forecast anything."""
    trend_min_points: int = 10
    """And there must be at least this many of them."""
    dashboard_window: str = "1h"
    dashboard_points: int = 120


class Reporter:
    """Health report and dashboard data for a store.

    ``engine`` (a :class:`~metricskit.alerting.engine.RuleEngine`) supplies active alerts;
    ``collector`` supplies the reasons behind failing checks when it runs in this process.
    """

    def __init__(
        self,
        store: Store,
        *,
        engine: RuleEngine | None = None,
        collector: Collector | None = None,
        settings: ReportSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.collector = collector
        self.settings = settings or ReportSettings()
        self.clock = clock or SystemClock()

    # -- health report ------------------------------------------------------------------

    def health_report(self) -> HealthReport:
        """The health report (see the module docstring); ``to_dict()`` gives its JSON."""
        now_ns = self.clock.now_ns()
        alerts = self.active_alerts()
        components = self.components(now_ns)
        system = self.system_resources(now_ns)
        summary = performance.summarize(
            self.store,
            self.settings.performance_window,
            np.datetime64(now_ns, "ns"),
            self.settings.thresholds,
        )
        issues = performance.detect_issues(
            self.store,
            self.settings.performance_window,
            np.datetime64(now_ns, "ns"),
            self.settings.thresholds,
        )
        trend_rows = self.trends(now_ns)
        watched = {rule.metric for rule in self.engine.rules} if self.engine is not None else ()
        findings = Finding.collect(system, components, alerts, issues, trend_rows, watched)
        return HealthReport(
            generated_at=iso(now_ns),
            overall_status=overall_status(findings),
            system=system,
            components=tuple(components),
            active_alerts=tuple(alerts),
            performance=summary,
            performance_issues=tuple(issues),
            trends=tuple(trend_rows),
            recommendations=tuple(recommend(findings)),
        )

    def active_alerts(self) -> list[AlertView]:
        """Pending and firing alerts (from the engine's persisted state)."""
        if self.engine is None:
            return []
        return [AlertView.of(a) for a in self.engine.active_alerts()]

    def system_resources(self, now_ns: int | None = None) -> dict[str, SystemValue]:
        """Latest system figures: ``{metric: value}`` (one host), or per host when tagged."""
        at = np.datetime64(now_ns or self.clock.now_ns(), "ns")
        out: dict[str, SystemValue] = {}
        for name in SYSTEM_METRICS:
            if describe(name).kind is MetricKind.COUNTER:
                continue  # cumulative network counters say nothing about current load
            per_host: dict[str, float | None] = {}
            for key, _ts, value in self.store.latest(name, at=at, lookback=self.settings.lookback):
                host = key.tags.get("host")
                if host is None:
                    out[name] = finite(value)
                elif name not in out or out[name] is per_host:
                    # once a series without a host tag is seen it is the value; host-tagged ones
                    # after it are ignored (mixed tagging is a config mistake)
                    out[name] = per_host
                    per_host[host] = finite(value)
        return out

    def _live_reasons(self) -> dict[tuple[str, str], str]:
        """Why each check a collector in this process holds last failed, by (kind, name)."""
        reasons: dict[tuple[str, str], str] = {}
        if self.collector is None:
            return reasons
        for scheduled in self.collector.sources:
            source = scheduled.source
            if not isinstance(source, CheckSource) or source.last_result is None:
                continue
            tags, reason = source.tags, source.last_result.reason
            if "check" in tags:
                reasons[("http", tags["check"])] = reason
            elif "database" in tags:
                reasons[("database", tags["database"])] = reason
        return reasons

    def components(self, now_ns: int | None = None) -> list[Component]:
        """Each health check and database: up/down, response time and, when known, why."""
        at_ns = now_ns or self.clock.now_ns()
        live = self._live_reasons()
        out = []
        for metric, (kind, tag) in _COMPONENT_METRICS.items():
            timing = "app.health.response_time_ms" if kind == "http" else "db.connection_time_ms"
            times = {
                k.tags: v
                for k, _t, v in self.store.latest(
                    timing, at=np.datetime64(at_ns, "ns"), lookback=self.settings.lookback
                )
            }
            latest = self.store.latest(
                metric, at=np.datetime64(at_ns, "ns"), lookback=self.settings.lookback
            )
            for key, ts, value in latest:
                name = key.tags.get(tag, str(key))
                up = value >= 0.5
                out.append(
                    Component(
                        name=name,
                        kind=kind,
                        status="up" if up else "down",
                        reason=live.get((kind, name)) or ("ok" if up else f"{metric} = {value:g}"),
                        response_time_ms=finite(times.get(key.tags)),
                        checked_at=iso(ts),
                        tags=dict(key.tags),
                    )
                )
        return out

    def trends(self, now_ns: int | None = None) -> list[TrendRow]:
        """Slopes and forecasts of disk and memory usage; ``crossing_at`` is when one
        reaches 100 %. Forecasts are clamped to 0..100 % (CPU is too noisy to forecast).

        A series with less history than ``trend_min_span`` or fewer than
        ``trend_min_points`` samples gets no slope or forecast, and its ``note`` says so.
        """
        settings = self.settings
        at = np.datetime64(now_ns or self.clock.now_ns(), "ns")
        rows: list[TrendRow] = []
        for name in ("system.disk.usage_percent", "system.memory.usage_percent"):
            frame = trends.linear_trends(
                self.store,
                name,
                self.settings.trend_window,
                now=at,
                horizon=self.settings.forecast_horizon,
                threshold=100.0,
                min_samples=settings.trend_min_points,
                min_span=settings.trend_min_span,
            )
            for row in frame.to_dict("records"):
                note = None
                if not row["enough_data"]:
                    note = (
                        f"not enough data to forecast: {row['samples']} samples over "
                        f"{_duration_text(row['span_hours'])} (needs {settings.trend_min_points}"
                        f" over {settings.trend_min_span})"
                    )
                rows.append(
                    TrendRow(
                        metric=name,
                        tags={
                            str(k): v
                            for k, v in row.items()
                            if k not in _TREND_COLUMNS and isinstance(v, str)
                        },
                        samples=int(row["samples"]),
                        span_hours=finite(row["span_hours"]),
                        note=note,
                        last_value=finite(row["last_value"]),
                        slope_per_hour=finite(row["slope_per_hour"]),
                        predicted=finite(float(np.clip(row["predicted"], 0.0, 100.0))),
                        horizon=self.settings.forecast_horizon,
                        crossing_at=None
                        if _nat(row["crossing_at"])
                        else row["crossing_at"].isoformat(),
                        hours_to_threshold=finite(row["hours_to_threshold"]),
                    )
                )
        return rows

    # -- dashboard ----------------------------------------------------------------------

    def dashboard(self, window: str | None = None) -> dict[str, pd.DataFrame]:
        """``{section: DataFrame}``: columns timestamp, metric, series, value (long format).

        Gauges are averaged per step, counters become per-second rates, request durations
        become throughput, error rate and p50/p95/p99. The step divides the window into
        ``dashboard_points`` points.
        """
        import pandas as pd

        window_ns = parse_duration(window or self.settings.dashboard_window)
        end_ns = self.clock.now_ns()
        step_ns = max(window_ns // self.settings.dashboard_points, NS_PER_S)
        out = {}
        for section, metrics in self.settings.sections.items():
            frames = [self._metric_frame(m, end_ns - window_ns, end_ns, step_ns) for m in metrics]
            frames = [f for f in frames if len(f)]
            out[section] = (
                pd.concat(frames, ignore_index=True)
                if frames
                else pd.DataFrame(
                    {
                        "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                        "metric": [],
                        "series": [],
                        "value": [],
                    }
                )
            )
        return out

    def _metric_frame(self, name: str, start_ns: int, end_ns: int, step_ns: int) -> pd.DataFrame:
        kind = describe(name).kind
        start, end = np.datetime64(start_ns, "ns"), np.datetime64(end_ns, "ns")
        step = step_ns / NS_PER_S
        if kind is MetricKind.HISTOGRAM:
            return self._request_frame(name, start, end, step)
        if kind is MetricKind.COUNTER:
            # one row per series and step: the per-second rate over two steps (>= 1 min)
            wide = self.store.rate(
                # Prometheus' habit: rate over >= 5 minutes, so a counter collected every
                # minute has several samples in each window
                name,
                window=max(step * 2, 300.0),
                step=step,
                start=start,
                end=end,
            )
        else:
            tag_keys = sorted({k for key in self.store.series(name) for k in key.tags})
            wide = self.store.aggregate(name, step, ["mean"], start, end, by=tag_keys or None)
            wide = wide.rename(columns={"mean": "value"})
        return self._long(wide, name)

    @staticmethod
    def _long(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """timestamp, metric, series (its tags as ``k=v,...``, else the name), value."""
        tag_columns = [c for c in frame.columns if c not in ("timestamp", "value", "name")]
        labels = (
            [
                ",".join(f"{c}={row[c]}" for c in tag_columns if isinstance(row[c], str)) or name
                for row in frame[tag_columns].to_dict("records")
            ]
            if tag_columns
            else [name] * len(frame)
        )
        long = frame.assign(metric=name, series=labels)
        return cast("pd.DataFrame", long[["timestamp", "metric", "series", "value"]])

    def _request_frame(self, name: str, start: Any, end: Any, step: float) -> pd.DataFrame:
        import pandas as pd

        stats = self.store.aggregate(name, step, ["count", "p50", "p95", "p99"], start, end)
        errors = _error_counts(self.store.query(name, start, end), stats, step)
        rows = (
            [
                pd.DataFrame(
                    {
                        "timestamp": stats["timestamp"],
                        "metric": f"{name}:{label}",
                        "series": label,
                        "value": values,
                    }
                )
                for label, values in (
                    ("throughput_rps", stats["count"] / step),
                    (
                        "error_rate",
                        np.where(stats["count"] > 0, errors / stats["count"].clip(lower=1), np.nan),
                    ),
                    ("p50", stats["p50"]),
                    ("p95", stats["p95"]),
                    ("p99", stats["p99"]),
                )
            ]
            if len(stats)
            else []
        )
        return cast("pd.DataFrame", pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()

    def to_html(self, path: str | os.PathLike[str] | None = None, window: str | None = None) -> str:
        """The health report and dashboard charts as one offline HTML page; written to ``path``.

        See :func:`metricskit.report.html.render_dashboard`.
        """
        from metricskit.report.html import render_dashboard, write_dashboard

        page = render_dashboard(
            self.health_report(),
            self.dashboard(window),
            metrics=self.settings.sections,
            section_titles=self.settings.section_titles,
        )
        if path is not None:
            write_dashboard(page, path)
        return page

    def dashboard_data(self, window: str | None = None) -> DashboardData:
        """:meth:`dashboard` as points per section, with the sections' configured titles
        (only for sections the config titles)."""
        sections = {
            section: tuple(
                DashboardPoint(
                    timestamp=row["timestamp"].isoformat(),
                    metric=row["metric"],
                    series=row["series"],
                    value=finite(float(row["value"])),
                )
                for row in frame.to_dict("records")
            )
            for section, frame in self.dashboard(window).items()
        }
        return DashboardData(
            generated_at=iso(self.clock.now_ns()),
            sections=sections,
            titles={k: v for k, v in self.settings.section_titles.items() if k in sections},
        )

    def dashboard_json(self, window: str | None = None) -> str:
        """:meth:`dashboard_data` as JSON: ``{"generated_at", "sections": {name: [{...},
        ...]}, "titles": {name: title}}``."""
        return json.dumps(self.dashboard_data(window).to_dict(), indent=2)


_TREND_COLUMNS = {
    "name",
    "samples",
    "span_hours",
    "enough_data",
    "last_value",
    "slope_per_hour",
    "fitted_now",
    "predicted",
    "predicted_at",
    "threshold",
    "crossing_at",
    "hours_to_threshold",
}


def _duration_text(hours: float) -> str:
    """``0.0167`` -> ``"1 min"``, ``2.5`` -> ``"2.5 h"``."""
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def _nat(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _error_counts(series: Iterable[Any], stats: pd.DataFrame, step: float) -> Any:
    """Requests with status >= 400 per dashboard window, aligned with ``stats``."""
    import pandas as pd

    starts = pd.DatetimeIndex(stats["timestamp"]).as_unit("ns").asi8
    counts = np.zeros(len(starts))
    step_ns = int(step * NS_PER_S)
    for s in series:
        if not performance.is_error_status(s.tags.get("status", "")):
            continue
        idx = np.searchsorted(starts, s.timestamps, side="right") - 1
        ok = (idx >= 0) & (s.timestamps < starts[np.clip(idx, 0, None)] + step_ns)
        np.add.at(counts, idx[ok], 1)
    return counts
