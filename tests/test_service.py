"""MonitoringService, the seed's facade: its method names as the seed calls them."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from metricskit.config import load_config
from metricskit.service import MonitoringService

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


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "monitoring.yaml"
    path.write_text(CONFIG)
    with MonitoringService(config=str(path)) as svc:
        yield svc


def test_seed_programmatic_usage(service: MonitoringService, tmp_path: Path) -> None:
    service.start_monitoring(interval=1)
    service.record_custom_metric("user.login", 1.0)
    service.record_custom_metric("business.user_signups", 5.0, tags={"source": "web"})
    service.record_request("/api/chat", 0.5, 200)
    service.record_request("/api/chat", 0.7, 503)
    # the CPU rule, and the seed's error-rate threshold (1 of 2 requests failed: 50 % > 5 %)
    # overall and for /api/chat
    wanted = {"system.any_cpu", "performance.high_error_rate"}
    deadline = time.monotonic() + 30
    while {a["rule"] for a in service.get_monitoring_status()["active_alerts"]} != wanted:
        assert time.monotonic() < deadline, "the CPU and error-rate rules never fired"
        time.sleep(0.2)
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
    with MonitoringService(config=str(path)) as svc:
        svc.start_monitoring(interval=1)
        log = tmp_path / "monitoring.log"
        deadline = time.monotonic() + 30
        while "alert rules evaluated in" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    text = log.read_text()
    assert "profile: source system took" in text and "profile: recorder pending" in text
