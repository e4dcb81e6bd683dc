import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metricskit as mk
from metricskit.alerting.engine import RuleEngine
from metricskit.model import Series, SeriesKey
from metricskit.recorder import Recorder
from metricskit.report.reporter import Reporter, ReportSettings
from metricskit.testing import ManualClock

T0 = 1_795_046_400
RULES = """
alerts:
  system:
    critical_memory:
      metric: "system.memory.usage_percent"
      threshold: 95.0
      operator: "gt"
      duration_seconds: 60
      severity: "critical"
      channels: ["log"]
    high_cpu:
      metric: "system.cpu.usage_percent"
      threshold: 80.0
      operator: "gt"
      duration_seconds: 0
      severity: "warning"
      channels: ["log"]
notifications:
  log: {path: "%s"}
"""


def put(store: mk.Store, name: str, tags: dict[str, str], ts_s: np.ndarray, values) -> None:  # type: ignore[no-untyped-def]
    ts = (np.asarray(ts_s) * 10**9).astype(np.int64)
    values = np.broadcast_to(np.asarray(values, dtype=float), ts.shape).copy()
    store.write([Series(SeriesKey.of(name, tags), ts, values)])


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = mk.open_store("memory://")
    clock = ManualClock(T0 + 3600)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES % (tmp_path / "alerts.log"))
    engine = RuleEngine.from_yaml(str(rules), store, clock=clock)
    yield store, clock, engine
    if engine.notifier is not None:
        engine.notifier.close()


def seed_data(store: mk.Store) -> None:
    t = T0 + np.arange(0, 3601, 60)
    put(store, "system.cpu.usage_percent", {}, t, 30.0)
    put(store, "system.memory.usage_percent", {}, t, 50.0)
    put(store, "system.disk.usage_percent", {}, t, 40 + (t - T0) / 3600 * 5)  # +5 %/h
    put(store, "app.health.status", {"check": "/api/health"}, t, 1.0)
    put(store, "app.health.response_time_ms", {"check": "/api/health"}, t, 12.0)
    put(store, "db.status", {"database": "main"}, t, 1.0)
    put(store, "system.network.bytes_sent", {}, t, (t - T0) * 1000.0)


def test_healthy_report(setup) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    seed_data(store)
    engine.evaluate()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    json.dumps(report)
    assert report["overall_status"] == "healthy"
    assert report["system"]["system.cpu.usage_percent"] == 30.0
    assert {(c["name"], c["status"]) for c in report["components"]} == {
        ("/api/health", "up"),
        ("main", "up"),
    }
    disk = next(t for t in report["trends"] if t["metric"] == "system.disk.usage_percent")
    assert disk["slope_per_hour"] == pytest.approx(5.0)
    assert disk["hours_to_threshold"] == pytest.approx(11.0)  # 45 % now, +5 %/h -> 100 % in 11 h
    assert [r["topic"] for r in report["recommendations"]] == ["disk_filling"]


def test_alerts_drive_status_and_recommendations(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    seed_data(store)
    put(store, "system.cpu.usage_percent", {}, np.array([T0 + 3600]), 93.0)
    engine.evaluate()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "warning"
    assert report["active_alerts"][0]["rule"] == "system.high_cpu"
    assert "high_cpu" in [r["topic"] for r in report["recommendations"]]
    # memory above 95 % for more than the rule's 60 s -> critical
    for dt in (60, 120, 180):
        put(store, "system.memory.usage_percent", {}, np.array([T0 + 3600 + dt]), 97.0)
        clock.set(T0 + 3600 + dt)
        engine.evaluate()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "critical"
    memory = next(r for r in report["recommendations"] if r["topic"] == "high_memory")
    assert memory["severity"] == "critical"
    assert "Check for memory leaks in the application" in memory["actions"]


def test_failing_check_without_alert_is_warning_with_reason(setup) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    seed_data(store)
    put(store, "app.health.status", {"check": "/api/health"}, np.array([T0 + 3600]), 0.0)
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "warning"
    down = next(c for c in report["components"] if c["status"] == "down")
    assert down["name"] == "/api/health" and "app.health.status = 0" in down["reason"]
    failing = next(r for r in report["recommendations"] if r["topic"] == "health_check_failing")
    assert "Verify database connectivity" in failing["actions"]


def test_slow_requests_recommend_the_seeds_actions(setup) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    rec = Recorder(store, clock=clock, flush_interval=3600)
    for i in range(50):
        rec.record_request("/api/chat", 3.5, 200, method="POST", timestamp=T0 + 3400 + i)
    rec.flush()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["performance"]["endpoints"]["/api/chat"]["count"] == 50
    slow = next(r for r in report["recommendations"] if r["topic"] == "slow_responses")
    assert slow["actions"] == [
        "Check database performance",
        "Review recent deployments",
        "Analyze slow query logs",
    ]
    rec.close()


def test_dashboard_sections(setup) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    seed_data(store)
    put(store, "system.cpu.usage_percent", {"host": "b"}, T0 + np.arange(0, 3601, 60), 10.0)
    rec = Recorder(store, clock=clock, flush_interval=3600)
    for i in range(100):
        rec.record_request("/api/chat", 0.1, 500 if i % 10 == 0 else 200, timestamp=T0 + 3000 + i)
    rec.flush()
    reporter = Reporter(
        store, engine=engine, clock=clock, settings=ReportSettings(dashboard_points=60)
    )
    frames = reporter.dashboard()
    assert list(frames) == [
        "system_overview",
        "application_health",
        "performance_metrics",
        "business_metrics",
    ]
    system = frames["system_overview"]
    assert list(system.columns) == ["timestamp", "metric", "series", "value"]
    cpu = system[system["metric"] == "system.cpu.usage_percent"]
    assert set(cpu["series"]) == {"system.cpu.usage_percent", "host=b"}
    net = system[system["metric"] == "system.network.bytes_sent"].dropna()
    assert net["value"].iloc[-1] == pytest.approx(1000.0)  # counter -> bytes/s
    perf = frames["performance_metrics"]
    errors = perf[perf["series"] == "error_rate"].dropna()
    assert len(errors) == 2 and (errors["value"] == 0.1).all()  # 6/60 and 4/40 per window
    assert len(frames["business_metrics"]) == 0
    data = json.loads(reporter.dashboard_json())
    assert set(data["sections"]) == set(frames)
    assert pd.Timestamp(data["sections"]["system_overview"][0]["timestamp"]).tz is not None
    rec.close()


def _worst_recommendation(report: dict) -> str:  # type: ignore[type-arg]
    severities = {r["severity"] for r in report["recommendations"]}
    return next((s for s in ("critical", "warning") if s in severities), "healthy")


def test_a_minute_of_data_forecasts_nothing_and_says_so(setup) -> None:  # type: ignore[no-untyped-def]
    """Issue 11 item 13: "disk full in 2.2 h" from a minute of data under a healthy banner."""
    store, clock, engine = setup
    t = T0 + 3600 - np.arange(60, -1, -15)
    put(store, "system.disk.usage_percent", {}, t, 80 + (t - t[0]) / 60 * 8)  # +8 %/min
    put(store, "system.memory.usage_percent", {}, t, 60 + (t - t[0]) / 60 * 20)
    put(store, "system.cpu.usage_percent", {}, t, 20.0)
    engine.evaluate()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "healthy"
    assert {t["metric"] for t in report["trends"]} == {
        "system.disk.usage_percent",
        "system.memory.usage_percent",
    }
    for row in report["trends"]:
        assert row["crossing_at"] is None and row["hours_to_threshold"] is None, row
        assert row["slope_per_hour"] is None and row["predicted"] is None, row
        assert row["note"].startswith("not enough data to forecast: 5 samples over 1 min"), row
    assert report["recommendations"] == []
    page = Reporter(store, engine=engine, clock=clock).to_html()
    assert "not enough data to forecast" in page and 'class="hot"' not in page


def test_recommendations_and_status_use_the_same_thresholds(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """CPU at 97 % with a high_cpu rule (80 %, 5 min) that is only pending: no critical
    advice under a healthy banner. Without rules, one high value is advice only."""
    store, clock, _engine = setup
    seed_data(store)
    put(store, "system.cpu.usage_percent", {}, np.array([T0 + 3600]), 97.0)
    rules = tmp_path / "pending.yaml"
    rules.write_text(
        "alerts:\n  system:\n    high_cpu:\n      metric: system.cpu.usage_percent\n"
        "      threshold: 80\n      operator: gt\n      duration_seconds: 300\n"
        "      severity: critical\n"
    )
    engine = RuleEngine.from_yaml(str(rules), store, clock=clock)
    engine.evaluate()
    assert [a.state for a in Reporter(store, engine=engine).active_alerts()] == ["pending"]
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "healthy"
    assert "high_cpu" not in [r["topic"] for r in report["recommendations"]]
    assert _worst_recommendation(report) == report["overall_status"]

    unruled = Reporter(store, clock=clock).health_report().to_dict()
    cpu = next(r for r in unruled["recommendations"] if r["topic"] == "high_cpu")
    assert cpu["severity"] == "info" and "system.cpu.usage_percent = 97.0%" in cpu["evidence"]
    assert unruled["overall_status"] == "healthy"


def test_status_matches_the_worst_recommendation(setup) -> None:  # type: ignore[no-untyped-def]
    store, clock, engine = setup
    seed_data(store)
    rec = Recorder(store, clock=clock, flush_interval=3600)
    for i in range(50):
        rec.record_request("/api/chat", 3.5, 200, method="POST", timestamp=T0 + 3400 + i)
    rec.close()
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    assert report["overall_status"] == "warning" == _worst_recommendation(report)
    put(store, "app.health.status", {"check": "/api/health"}, np.array([T0 + 3600]), 0.0)
    report = Reporter(store, engine=engine, clock=clock).health_report().to_dict()
    failing = next(r for r in report["recommendations"] if r["topic"] == "health_check_failing")
    assert failing["severity"] == "warning" == report["overall_status"]


def test_a_check_running_in_this_process_gives_the_reason_it_is_down(setup) -> None:  # type: ignore[no-untyped-def]
    """The Reporter finds check sources through the CheckSource protocol: a database check
    on a closed port says why it is down instead of ``db.status = 0``."""
    from metricskit.collect.collector import Collector
    from metricskit.collect.sources.database import DatabaseCheck
    from metricskit.report.types import CheckSource
    from tests.services import free_port

    store, _clock, engine = setup
    check = DatabaseCheck(f"postgresql://postgres@127.0.0.1:{free_port()}/test", name="orders")
    assert isinstance(check, CheckSource)
    rec = Recorder(store, flush_interval=3600)
    collector = Collector(rec, self_metrics=False)
    collector.add(check, "60s")
    collector.add(lambda: [], "60s", name="plain callable")  # not a check: skipped
    collector.collect_once()
    rec.flush()
    (orders,) = Reporter(store, engine=engine, collector=collector).components()
    assert orders.name == "orders" and orders.status == "down"
    assert check.last_result is not None and orders.reason == check.last_result.reason
    assert "OperationalError" in orders.reason and "db.status" not in orders.reason
    rec.close()
