"""Pins the exact JSON of a realistic health report, the dashboard JSON and the CLI's
health screen, so that the typed report (``metricskit.report.types``) changes nothing a
user sees. Regenerate a golden file only for an intended change:
``METRICSKIT_REGOLD=1 pytest tests/test_report_golden.py``."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import metricskit as mk
from metricskit.alerting.engine import RuleEngine
from metricskit.cli import _render as render
from metricskit.recorder import Recorder
from metricskit.report.html import render_dashboard
from metricskit.report.reporter import Reporter, ReportSettings
from metricskit.testing import ManualClock
from tests.test_report import RULES, T0, put, seed_data

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = mk.open_store("memory://")
    clock = ManualClock(T0 + 3600)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES % (tmp_path / "alerts.log"))
    engine = RuleEngine.from_yaml(str(rules), store, clock=clock)
    yield store, clock, engine
    if engine.notifier is not None:
        engine.notifier.close()


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("METRICSKIT_REGOLD"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _realistic_reporter(store, clock, engine) -> Reporter:  # type: ignore[no-untyped-def]
    """Every part of a report filled: per-host figures, a down check, firing and pending
    alerts, slow and failing requests, a forecast and a too-short trend."""
    seed_data(store)
    t = T0 + np.arange(0, 3601, 60)
    put(store, "system.memory.usage_percent", {"host": "b"}, t[-3:], 93.5)
    put(store, "system.disk.usage_percent", {"host": "b"}, t[-3:], 20.0)
    put(store, "system.load.1min", {"host": "a"}, t[-3:], 1.5)
    put(store, "system.load.1min", {"host": "b"}, t[-3:], float("nan"))
    put(store, "app.health.status", {"check": "/ready"}, np.array([T0 + 3600]), 0.0)
    put(store, "system.cpu.usage_percent", {}, np.array([T0 + 3600]), 93.0)
    put(store, "system.memory.usage_percent", {}, np.array([T0 + 3600]), 97.0)
    engine.evaluate()
    rec = Recorder(store, clock=clock, flush_interval=3600)
    for i in range(60):
        status = 500 if i % 5 == 0 else 200
        rec.record_request("/api/chat", 3.5, status, method="POST", timestamp=T0 + 3400 + i)
        rec.record_request("/api/ping", 0.01, 200, timestamp=T0 + 3400 + i)
    rec.close()
    return Reporter(store, engine=engine, clock=clock, settings=ReportSettings(dashboard_points=12))


def test_health_report_json_is_pinned(env) -> None:  # type: ignore[no-untyped-def]
    reporter = _realistic_reporter(*env)
    report = reporter.health_report()
    data = report.to_dict()
    assert data["overall_status"] == "warning" and data["active_alerts"]
    _check("health_report.json", json.dumps(data, indent=2) + "\n")


def test_dashboard_json_is_pinned(env) -> None:  # type: ignore[no-untyped-def]
    reporter = _realistic_reporter(*env)
    _check("dashboard.json", reporter.dashboard_json() + "\n")


def test_cli_health_screen_is_pinned(env) -> None:  # type: ignore[no-untyped-def]
    reporter = _realistic_reporter(*env)
    out = io.StringIO()
    Console(file=out, width=120, color_system=None, force_terminal=False).print(
        render.health_view(reporter.health_report())
    )
    _check("health_screen.txt", out.getvalue())


def test_html_page_is_pinned(env) -> None:  # type: ignore[no-untyped-def]
    reporter = _realistic_reporter(*env)
    page = render_dashboard(
        reporter.health_report(), reporter.dashboard(), metrics=reporter.settings.sections
    )
    _check("dashboard.html", page)


def test_html_from_a_saved_report_matches(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """docs/dashboard.md: a report loaded from ``health --save`` JSON renders the same page."""
    reporter = _realistic_reporter(*env)
    report = reporter.health_report()
    data = report.to_dict()
    loaded = json.loads(json.dumps(data))
    frames = reporter.dashboard()
    assert render_dashboard(loaded, frames) == render_dashboard(report, frames)


@pytest.mark.parametrize("part", ["system", "components", "active_alerts", "trends"])
def test_html_from_a_partial_report(env, part: str) -> None:  # type: ignore[no-untyped-def]
    reporter = _realistic_reporter(*env)
    report = reporter.health_report()
    data = report.to_dict()
    page = render_dashboard({part: data[part], "overall_status": "warning"}, {})
    assert "WARNING" in page


def test_a_saved_report_reads_back_to_the_same_json(env) -> None:  # type: ignore[no-untyped-def]
    from metricskit.report.types import HealthReport

    report = _realistic_reporter(*env).health_report()
    data = json.loads(json.dumps(report.to_dict()))
    assert HealthReport.from_dict(data).to_dict() == data
    assert HealthReport.from_dict({}).to_dict()["overall_status"] == "unknown"
