"""The HTML dashboard: structure, statuses, escaping, offline-ness, empty stores and NaN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metricskit as mk
from metricskit.alerting.engine import RuleEngine
from metricskit.recorder import Recorder
from metricskit.report._svg_chart import MAX_POINTS, Line, downsample, mark_gaps, render_chart
from metricskit.report.html import render_dashboard
from metricskit.report.reporter import Reporter, ReportSettings
from metricskit.testing import ManualClock
from tests.test_report import RULES, T0, put, seed_data

EVIL = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Every start tag with its attributes, the text, and what sits inside <svg>."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def by_id(self, ident: str) -> dict[str, str | None]:
        return next(a for _t, a in self.tags if a.get("id") == ident)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[mk.Store, ManualClock, RuleEngine]]:
    store = mk.open_store("memory://")
    clock = ManualClock(T0 + 3600)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES % (tmp_path / "alerts.log"))
    engine = RuleEngine.from_yaml(str(rules), store, clock=clock)
    yield store, clock, engine
    if engine.notifier is not None:
        engine.notifier.close()


def busy_world(store: mk.Store, clock: ManualClock, engine: RuleEngine) -> Reporter:
    """Every part of the page has something to show: alerts, a down check, slow requests."""
    seed_data(store)
    t = T0 + np.arange(0, 3601, 60)
    cpu = 30 + 20 * np.sin((t - T0) / 600)
    cpu[10:14] = np.nan  # a gap the line must break at
    put(store, "system.cpu.usage_percent", {}, t, cpu)
    put(store, "system.cpu.usage_percent", {"host": EVIL}, t, 10 + (t - T0) / 3600 * 60)
    put(store, "system.cpu.usage_percent", {}, np.array([T0 + 3600]), 93.0)
    put(store, "system.load.1min", {}, t, 1.5)
    put(store, "app.health.status", {"check": "/api/<b>health</b>"}, np.array([T0 + 3600]), 0.0)
    fine = T0 + np.arange(0, 3601, 20)  # the default 30 s dashboard step needs >= 2 per minute
    put(store, "system.network.bytes_recv", {}, fine, (fine - T0) * 2.5e6)
    rec = Recorder(store, clock=clock, flush_interval=3600)
    for i in range(300):
        slow = i % 3 == 0
        rec.record_request(
            "/api/chat" if slow else "/api/items",
            3.5 if slow else 0.05 + 0.01 * (i % 7),
            500 if i % 11 == 0 else 200,
            method="POST",
            timestamp=T0 + 3290 + i,
        )
    rec.close()
    engine.evaluate()
    return Reporter(store, engine=engine, clock=clock)


def test_every_part_of_the_report_is_on_the_page(world) -> None:  # type: ignore[no-untyped-def]
    reporter = busy_world(*world)
    report = reporter.health_report().to_dict()
    page = Page(reporter.to_html())
    text = page.plain
    assert report["overall_status"] == "warning"
    banner = next(a for t, a in page.tags if t == "header")
    assert banner["class"] == "banner warn" and "WARNING" in text
    for ident in ("system", "components", "alerts", "performance", "issues", "trends"):
        assert page.by_id(ident)
    assert "CPU utilization" in text and "93.00 %" in text  # latest CPU with its unit
    assert "system.high_cpu" in text  # the firing alert
    assert "/api/<b>health</b>" in text and "app.health.status = 0" in text  # down, why
    assert "All endpoints" in text and "/api/chat" in text and "/api/items" in text
    assert "3,500 ms" in text  # /api/chat's p50 in ms
    assert "mean_seconds" in text  # performance issue figure
    disk = report["trends"][0]
    assert disk["metric"] == "system.disk.usage_percent" and disk["crossing_at"]
    assert "in 24h" in text and "(11.00 h)" in text  # disk full forecast
    for rec in report["recommendations"]:
        assert rec["title"] in text
        assert all(action in text for action in rec["actions"])
    sections = [a["id"] for _t, a in page.tags if str(a.get("id", "")).startswith("dashboard-")]
    assert sections == [f"dashboard-{s}" for s in ReportSettings().sections]
    for title in ("System Overview", "Application Health", "Performance Metrics"):
        assert title in text
    assert "Business Metrics" in text


def test_charts_have_a_polyline_per_series_and_no_data_boxes(world) -> None:  # type: ignore[no-untyped-def]
    reporter = busy_world(*world)
    html = reporter.to_html()
    page = Page(html)
    series = [a["data-series"] for a in page.all("g")]
    assert series.count("system.cpu.usage_percent") == 1
    assert EVIL.replace("<", "") not in series  # tag value kept verbatim, escaped
    assert f"host={EVIL}" in series
    assert {"throughput_rps", "error_rate", "p50", "p95", "p99"} <= set(series)
    assert len(page.all("polyline")) >= 8
    # business metrics have no samples: each configured metric shows its own empty chart
    business = html.split('id="dashboard-business_metrics"')[1]
    assert business.count('class="nodata"') == 4
    # network counter became a rate: its unit is per second, ticks in SI units
    assert "Network bytes received (B/s)" in page.plain
    assert re.search(r">\d+(\.\d+)?M</text>", html)


def test_every_string_from_data_is_escaped(world) -> None:  # type: ignore[no-untyped-def]
    reporter = busy_world(*world)
    html = reporter.to_html()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>health" not in html
    page = Page(html)
    assert f"host={EVIL}" in page.plain  # the browser shows the text as it was tagged
    report = reporter.health_report().to_dict()
    report["overall_status"] = '"><img src=x onerror=alert(1)>'
    hostile = render_dashboard(report, {f"<i>{EVIL}": reporter.dashboard()["system_overview"]})
    assert "<img" not in hostile and "<i>" not in hostile
    assert all(t in {"html", "head", "meta", "title", "style", "body", "header", "h1", "div",
                     "nav", "a", "main", "section", "h2", "table", "thead", "tr", "th",
                     "tbody", "td", "small", "span", "p", "strong", "ul", "ol", "li", "figure",
                     "figcaption", "svg", "rect", "line", "text", "g", "polyline", "circle",
                     "i"} for t, _ in Page(hostile).tags)  # fmt: skip


def external_references(html: str) -> list[str]:
    """Anything that would make a browser fetch from the network."""
    page = Page(html)
    found = []
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            fetches = name in {"src", "href", "xlink:href", "action", "poster", "srcset", "data"}
            if fetches and value and not value.startswith("#"):
                found.append(f"<{tag} {name}={value}>")
        if tag == "link" or (tag == "script" and "src" in attrs):
            found.append(f"<{tag}>")
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    found += re.findall(r"@import|url\(", style)
    found += re.findall(r"""(?:src|href)\s*=\s*["']?https?://""", html)
    return found


def test_page_is_self_contained(world) -> None:  # type: ignore[no-untyped-def]
    html = busy_world(*world).to_html()
    assert external_references(html) == []
    assert "<script" not in html.lower() and "<link" not in html.lower()
    csp = next(a for a in Page(html).all("meta") if a.get("http-equiv"))
    assert csp["content"] == "default-src 'none'; style-src 'unsafe-inline'"
    # the checker itself catches what it is for
    assert external_references('<style>a{}</style><img src="http://x/y.png">')
    assert external_references('<style>@import "x.css";</style>')


def test_empty_store_renders(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = world
    target = tmp_path / "dash.html"
    html = Reporter(store, engine=engine, clock=clock).to_html(target)
    assert target.read_text(encoding="utf-8") == html
    assert not list(tmp_path.glob("dash.html.tmp-*"))
    page = Page(html)
    assert "HEALTHY" in page.plain
    for empty in ("No active alerts.", "No requests in the window.", "No system metrics"):
        assert empty in page.plain
    assert html.count('class="nodata"') == sum(
        len(m) + 2 * (m == ("http.request.duration_seconds",))
        for m in ReportSettings().sections.values()
    )  # the request histogram draws three charts
    assert page.all("polyline") == []


def test_report_without_optional_parts_renders() -> None:
    html = render_dashboard({}, {})
    assert "UNKNOWN" in Page(html).plain and external_references(html) == []


def frame(ts_s: np.ndarray, values: np.ndarray, metric: str, series: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts_s, unit="s", utc=True),
            "metric": metric,
            "series": series,
            "value": values,
        }
    )


def test_nan_breaks_the_line_and_lone_points_become_dots() -> None:
    ts = T0 + np.arange(10) * 60.0
    values = np.array([1, 2, np.nan, 3, 4, 5, np.nan, 6, np.nan, np.nan])
    html = render_dashboard(
        {}, {"s": frame(ts, values, "x.y", "a")}, metrics={"s": ["x.y", "x.missing"]}
    )
    page = Page(html)
    polylines = page.all("polyline")
    assert [len(str(p["points"]).split()) for p in polylines] == [2, 3]
    assert len(page.all("circle")) == 1  # the 6 between two gaps
    assert "nan" not in html.lower()
    assert html.count('class="nodata"') == 1  # x.missing
    assert " 6" in page.plain  # legend shows the last finite value


def test_all_nan_series_is_no_data() -> None:
    ts = T0 + np.arange(5) * 60.0
    html = render_dashboard({}, {"s": frame(ts, np.full(5, np.nan), "x.y", "a")})
    assert 'class="nodata"' in html and "<svg" not in html


def test_axes_have_time_and_value_ticks() -> None:
    ts = T0 + np.arange(61) * 60.0  # one hour
    chart = render_chart([Line("a", (ts * 1e9).astype(np.int64), np.linspace(0, 87, 61))],
                         (int(ts[0] * 1e9), int(ts[-1] * 1e9)), "%")  # fmt: skip
    labels = re.findall(r">([^<>]+)</text>", chart)
    assert labels[:5] == ["0", "25", "50", "75", "100"]  # 0..87 % plus headroom
    times = [lab for lab in labels if re.fullmatch(r"\d\d:\d\d", lab)]
    assert 3 <= len(times) <= 7 and times == sorted(times)
    assert "87\u2009%" in chart  # legend: last value with unit


def test_long_series_are_thinned_keeping_extremes() -> None:
    n = 50_000
    ts = np.arange(n, dtype=np.int64) * 10**9
    values = np.sin(np.arange(n) / 500.0)
    values[12_345] = 40.0  # one spike a stride would miss
    values[20_000:30_000] = np.nan
    thin = downsample(mark_gaps(Line("a", ts, values)))
    assert len(thin.values) <= MAX_POINTS
    assert np.nanmax(thin.values) == 40.0 and np.all(np.diff(thin.timestamps) > 0)
    assert np.isnan(thin.values).any()  # the long gap survives
    html = render_dashboard({}, {"s": frame(ts / 1e9, values, "x.y", "a")})
    points = sum(len(str(p["points"]).split()) for p in Page(html).all("polyline"))
    assert points <= MAX_POINTS and len(Page(html).all("polyline")) == 2


def test_flat_and_negative_values_get_a_usable_axis() -> None:
    ts = T0 + np.arange(3) * 60.0
    for values in (np.array([5.0, 5.0, 5.0]), np.array([-3.0, -1.0, 2.0]), np.zeros(3)):
        html = render_dashboard({}, {"s": frame(ts, values, "x.y", "a")})
        ticks = [float(v) for v in re.findall(r">(-?[\d.]+)</text>", html)]
        assert len(ticks) >= 3 and ticks == sorted(ticks), ticks
        assert ticks[0] <= values.min() and values.max() < ticks[-1]
        assert ticks[0] == 0 or values.min() < 0  # non-negative data starts at zero
        ys = [float(v) for p in Page(html).all("polyline") for v in re.findall(
            r",([\d.]+)", str(p["points"]))]  # fmt: skip
        assert len(ys) == 3 and all(10 <= y <= 214 for y in ys)  # inside the plot area


def test_steps_finer_than_the_samples_are_not_gaps() -> None:
    ts = T0 + np.arange(0, 3600, 30.0)  # 30 s dashboard steps over 60 s samples
    values = np.where(np.arange(len(ts)) % 2 == 0, 50.0, np.nan)
    values[40:50] = np.nan  # five missed collections: a real gap
    html = render_dashboard({}, {"s": frame(ts, values, "x.y", "a")})
    runs = [len(str(p["points"]).split()) for p in Page(html).all("polyline")]
    assert runs == [20, 35]
