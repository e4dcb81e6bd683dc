"""MonitoringService, the seed's facade: its method names as the seed calls them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from metricskit.config import load_config
from metricskit.service import MonitoringService
from metricskit.testing import ManualClock

CONFIG = """
storage: {type: memory}
collection:
  interval_seconds: 1
  enabled_metrics: {system: [cpu_usage], application: [], business: []}
alerts:
  system:
    any_cpu:
      metric: system.cpu.usage_percent
      threshold: -1
      operator: gt
      duration_seconds: 0
      severity: warning
      channels: [log]
"""


def ticked(svc: MonitoringService, clock: ManualClock, by: str | None = None) -> None:
    """Move the service's clock, run what is due and wait for the collection it started.

    The service's own scheduler thread may run the due tasks first; ``tick`` then waits
    for it, so what was due has run either way when this returns.
    """
    if by is not None:
        clock.advance(by)
    assert svc.scheduler is not None and svc.collector is not None
    svc.scheduler.tick()
    assert svc.collector.wait(timeout=30)
    svc.recorder.flush()


def test_seed_programmatic_usage(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(CONFIG)
    clock = ManualClock()
    with MonitoringService(config=str(path), clock=clock) as service:
        check_seed_usage(service, clock, tmp_path)


def check_seed_usage(service: MonitoringService, clock: ManualClock, tmp_path: Path) -> None:
    service.start_monitoring(interval=1)
    service.record_custom_metric("user.login", 1.0)
    service.record_custom_metric("business.user_signups", 5.0, tags={"source": "web"})
    service.record_request("/api/chat", 0.5, 200)
    service.record_request("/api/chat", 0.7, 503)
    # the CPU rule, and the seed's error-rate threshold (1 of 2 requests failed: 50 % > 5 %)
    # overall and for /api/chat
    wanted = {"system.any_cpu", "performance.high_error_rate"}
    ticked(service, clock)  # the first collection
    for _ in range(5):  # evaluations by the service's clock until both rules fired
        ticked(service, clock, "1s")
        if {a["rule"] for a in service.get_monitoring_status()["active_alerts"]} == wanted:
            break
    assert {a["rule"] for a in service.get_monitoring_status()["active_alerts"]} == wanted
    status = service.get_monitoring_status()
    assert status["running"] and status["interval_seconds"] == 1
    assert f"Active alerts: {len(status['active_alerts'])}" == "Active alerts: 3"
    health = service.generate_health_report()
    assert health["overall_status"] == "warning"
    assert health["performance"]["endpoints"]["/api/chat"]["count"] == 2
    dashboard = service.get_dashboard_data()
    assert "system_overview" in dashboard["sections"]
    service.stop_monitoring()
    assert not service.get_monitoring_status()["running"]
    statuses = {s.tags["status"] for s in service.store.query("http.request.duration_seconds")}
    assert statuses == {"200", "503"}
    assert service.store.query("user.login")[0].values.tolist() == [1.0]
    assert (tmp_path / "monitoring.log").read_text().count("monitoring started") == 1
    assert service.notifier.flush(timeout=30)
    assert "FIRING" in (tmp_path / "monitoring_alerts.log").read_text()
    assert service.cleanup(0) > 0
    assert service.store.query("user.login") == []


def test_error_details_off_keeps_status_classes(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "storage: {type: memory}\nperformance: {error_tracking: {track_error_details: false}}\n"
    )
    with MonitoringService(load_config(path), write_logs=False) as svc:
        for code in (500, 502, 503, 200, 201, 404):
            svc.record_request("/x", 0.1, code)
        svc.recorder.flush()
        series = svc.store.query("http.request.duration_seconds")
        assert sorted(s.tags["status"] for s in series) == ["2xx", "4xx", "5xx"]
        summary = svc.generate_health_report()["performance"]["endpoints"]["/x"]
        assert summary["errors"] == 4 and summary["count"] == 6


def test_shared_instance_is_created_on_first_use(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text("storage: {type: memory}\n")
    code = (
        "import sys, metricskit.service as s; assert s._shared is None; "
        "from metricskit.service import monitoring_service as m; "
        "m.record_request(endpoint='/a', response_time=0.1, status_code=200); "
        "print(type(m).__name__, m.store.backend.scheme)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["MonitoringService", "memory"]


def test_performance_profiling_logs_timings(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(CONFIG + "debug: {performance_profiling: true}\n")
    clock = ManualClock()
    with MonitoringService(config=str(path), clock=clock) as svc:
        svc.start_monitoring(interval=1)
        log = tmp_path / "monitoring.log"
        ticked(svc, clock)
        assert "profile:" not in log.read_text()  # a profile covers an interval
        ticked(svc, clock, "1s")
    text = log.read_text()
    assert "alert rules evaluated in" in text
    assert "profile: source system took" in text and "profile: recorder pending" in text


def test_status_file_ignores_a_symlink_at_the_old_temp_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "monitoring_status.tmp").symlink_to(victim)
    path = tmp_path / "monitoring.yaml"
    path.write_text(CONFIG)
    clock = ManualClock()
    with MonitoringService(config=str(path), clock=clock) as svc:
        svc.start_monitoring(interval=1)
        ticked(svc, clock)
        assert json.loads((tmp_path / "monitoring_status.json").read_text())["running"]
    assert victim.read_text() == "precious\n"


def test_retention_runs_on_the_service_clock(tmp_path: Path) -> None:
    """The first pass runs at once (it used to wait until the host had been up an hour),
    and the next one an hour later by the service's clock."""
    import numpy as np

    from metricskit.model import Series, SeriesKey

    path = tmp_path / "monitoring.yaml"
    path.write_text(
        "storage: {type: memory}\ncollection:\n  interval_seconds: 1\n  retention_days: 1\n"
        "  enabled_metrics: {system: [], application: [], business: []}\n"
    )
    clock = ManualClock(start=1_700_000_000)

    def old_sample_remains() -> bool:
        return bool(svc.store.query("app.old.metric"))

    def write_old_sample() -> None:
        two_days_ago = clock.now_ns() - 2 * 86_400 * 10**9
        key = SeriesKey.of("app.old.metric")
        svc.store.write([Series(key, np.array([two_days_ago]), np.array([1.0]))])

    with MonitoringService(load_config(path), clock=clock, write_logs=False) as svc:
        write_old_sample()
        svc.start_monitoring()
        ticked(svc, clock)
        assert not old_sample_remains(), "the first pass runs at once"
        write_old_sample()
        ticked(svc, clock, "59m")
        assert old_sample_remains(), "the next pass waits an hour"
        ticked(svc, clock, "1m")
        assert not old_sample_remains(), "an hour later"
        write_old_sample()
        clock.set(clock.now() - 1800)  # set backwards: a new hour starts
        ticked(svc, clock)
        assert not old_sample_remains(), "after the clock was set backwards"


@pytest.mark.parametrize(("interval", "expected"), [(None, {3600.0, 1.0}), (2, {2.0})])
def test_explicit_interval_overrides_per_group_intervals(
    tmp_path: Path, interval: float | None, expected: set[float]
) -> None:
    """`metricskit start --interval` is documented as the seconds between collections."""
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        "storage: {type: memory}\ncollection:\n  interval_seconds: 1\n"
        "  intervals: {system: 3600}\n"
        "  enabled_metrics: {system: [cpu_usage], application: [], business: [user_activity]}\n"
    )
    with MonitoringService(load_config(path), write_logs=False) as svc:
        svc.start_monitoring(interval)
        assert svc.collector is not None
        assert {job.interval_ns / 1e9 for job in svc.collector.sources} == expected
        # the override changes the intervals only: what each group collects stays
        only = {job.name: job.only for job in svc.collector.sources}
        assert only["system"] is not None and "system.cpu.usage_percent" in only["system"]


def test_one_scheduler_runs_collection_evaluation_retention_and_status(tmp_path: Path) -> None:
    """No rule-engine or housekeeping thread of its own: one scheduler, driven by tick."""
    path = tmp_path / "monitoring.yaml"
    path.write_text(CONFIG + "service: {evaluation_interval_seconds: 5}\n")
    clock = ManualClock()
    with MonitoringService(config=str(path), clock=clock) as svc:
        svc.start_monitoring(interval=1)
        assert svc.scheduler is not None and svc.scheduler.running
        assert not svc.engine.running
        tasks = svc.scheduler.tasks
        assert list(tasks) == ["collect", "evaluate", "retention", "status"]
        ticked(svc, clock)
        evaluated = tasks["evaluate"].last_run_ns
        assert evaluated == clock.now_ns()
        ticked(svc, clock, "4s")
        assert tasks["evaluate"].last_run_ns == evaluated  # every 5 s by the clock
        assert tasks["status"].last_run_ns == clock.now_ns()
        ticked(svc, clock, "1s")
        assert tasks["evaluate"].last_run_ns == clock.now_ns()
        svc.stop_monitoring()
        assert not svc.scheduler.running


def _no_nan(constant: str) -> None:
    raise AssertionError(f"{constant} in JSON (RFC 8259 has no such value)")


def test_an_expression_rule_alert_is_strict_json_and_reads_well(tmp_path: Path) -> None:
    # the built-in performance rules are PromQL expr rules: no metric, no threshold (NaN)
    path = tmp_path / "monitoring.yaml"
    path.write_text("storage: {type: memory}\n")
    with MonitoringService(str(path), clock=ManualClock()) as svc:
        svc.record_request("/api/chat", 0.5, 200)
        svc.record_request("/api/chat", 0.7, 503)
        svc.recorder.flush()
        fired = [e for e in svc.engine.evaluate() if e.state.value == "firing"]
        assert {e.rule for e in fired} == {"performance.high_error_rate"}
        server = svc.start_server(port=0)
        try:
            response = requests.get(f"{server.url}/api/health", timeout=30)
        finally:
            server.stop()
        assert response.status_code == 200
        report = json.loads(response.text, parse_constant=_no_nan)
        assert {a["threshold"] for a in report["active_alerts"]} == {None}
        advice = json.dumps(report["recommendations"])
        assert "High error rate" in advice and "nan" not in advice.lower()
        assert svc.notifier.flush(timeout=30)
    lines = (tmp_path / "monitoring_alerts.log").read_text().splitlines()
    assert lines and all(" ALERT: High error rate: 50% of requests failed" in x for x in lines)
    assert not [x for x in lines if " -  = " in x or "nan" in x.lower()]
