"""The seed's performance thresholds are alerts: they fire, notify, resolve, persist and
set the overall status like any rule (built-in ``performance.*`` rules).

A real MonitoringService on a SQLite store records requests; ``metricskit health`` runs
in another process; a second service on the same store resolves what the first fired.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from metricskit.service import MonitoringService

CONFIG = """
collection:
  interval_seconds: 60
notifications:
  log: {path: monitoring_alerts.log}
"""


def health(cwd: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "metricskit", "health", "--output", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return done.returncode, report


def alert_lines(path: Path) -> list[tuple[str, str, str]]:
    """(ALERT|RESOLVED, rule, endpoint or '*') of each line of the alert log."""
    out = []
    for line in path.read_text().splitlines():
        kind = line.split(" ", 2)[1].rstrip(":")
        rule = re.search(r"rule=(\S+)", line)
        endpoint = re.search(r"endpoint=(\S+)", line)
        assert rule is not None
        out.append((kind, rule.group(1), endpoint.group(1) if endpoint else "*"))
    return sorted(out)


def service(tmp_path: Path) -> MonitoringService:
    return MonitoringService(tmp_path / "monitoring.yaml", write_logs=False)


def record(svc: MonitoringService, count: int, status: int, seconds: float = 0.1) -> None:
    for _ in range(count):
        svc.record_request("/api/chat", seconds, status)
    svc.recorder.flush()


def test_half_the_requests_failing_fires_notifies_and_resolves(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(CONFIG)
    alerts_log = tmp_path / "monitoring_alerts.log"
    first = service(tmp_path)
    record(first, 10, 200)
    record(first, 10, 500)
    fired = {(e.rule, e.tags.get("endpoint", "*"), e.state.value) for e in first.engine.evaluate()}
    assert fired >= {
        ("performance.high_error_rate", "*", "firing"),
        ("performance.high_error_rate", "/api/chat", "firing"),
    }
    assert not any("response_time" in rule for rule, _, _ in fired)
    first.notifier.flush(30)
    assert alert_lines(alerts_log) == [
        ("ALERT", "performance.high_error_rate", "*"),
        ("ALERT", "performance.high_error_rate", "/api/chat"),
    ]
    first.close()

    code, report = health(tmp_path)
    assert (code, report["overall_status"]) == (1, "warning")
    active = report["active_alerts"]
    assert isinstance(active, list)
    assert {a["rule"] for a in active} == {"performance.high_error_rate"}

    # a restarted service: the alerts are restored, not re-sent, and resolve
    second = service(tmp_path)
    assert second.engine.evaluate() == []
    record(second, 400, 200)  # 10 errors in 420 requests: 2.4 %
    resolved = [e.state.value for e in second.engine.evaluate()]
    assert resolved == ["resolved", "resolved"]
    second.notifier.flush(30)
    assert [kind for kind, _, _ in alert_lines(alerts_log)] == [
        "ALERT",
        "ALERT",
        "RESOLVED",
        "RESOLVED",
    ]
    second.close()
    code, report = health(tmp_path)
    assert (code, report["overall_status"]) == (0, "healthy")


def test_slow_requests_fire_the_mean_and_p95_rules(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(CONFIG)
    svc = service(tmp_path)
    record(svc, 20, 200, seconds=6.0)
    fired = {e.rule for e in svc.engine.evaluate() if e.state.value == "firing"}
    assert fired == {"performance.high_mean_response_time", "performance.high_p95_response_time"}
    assert svc.engine.overall_status() == "warning"
    svc.close()


def test_the_config_redefines_or_turns_off_a_built_in_rule(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(
        CONFIG
        + "alerts:\n  performance:\n"
        + "    high_error_rate:\n"
        + "      {metric: http.request.error_rate_percent, threshold: 60, operator: gt}\n"
        + "    high_mean_response_time:\n"
        + "      {metric: http.request.mean_seconds, threshold: 2, operator: gt,"
        + " enabled: false}\n"
    )
    svc = service(tmp_path)
    record(svc, 10, 200, seconds=3.0)
    record(svc, 10, 500, seconds=3.0)
    assert [e.rule for e in svc.engine.evaluate()] == []  # 50 % < 60 %; mean rule off
    svc.close()
