"""The seed's performance thresholds are alerts: they fire, notify, resolve, persist and
set the overall status like any rule (built-in ``performance.*`` rules).

A real MonitoringService on a SQLite store records requests; ``metricskit health`` runs
in another process; a second service on the same store resolves what the first fired.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metricskit import Store, open_store
from metricskit._time import NS_PER_S
from metricskit.alerting.performance_rules import expressions
from metricskit.query.performance import (
    OVERALL,
    REQUEST_METRIC,
    PerformanceThresholds,
    summarize_series,
)
from metricskit.recorder import Recorder
from metricskit.service import MonitoringService
from metricskit.testing import ManualClock

T0 = 1_700_000_000

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
    clock = ManualClock()
    svc = MonitoringService(tmp_path / "monitoring.yaml", write_logs=False, clock=clock)
    record(svc, 20, 200, seconds=6.0)
    # the mean counts the observations; the p95 is a rate of the bucket counters, which
    # needs a second sample of them (the next flush), as in Prometheus
    fired = {e.rule for e in svc.engine.evaluate() if e.state.value == "firing"}
    assert fired == {"performance.high_mean_response_time"}
    clock.advance("10s")
    record(svc, 20, 200, seconds=6.0)
    fired = {e.rule for e in svc.engine.evaluate() if e.state.value == "firing"}
    assert fired == {"performance.high_p95_response_time"}
    assert svc.engine.overall_status() == "warning"
    (p95,) = [a for a in svc.engine.active_alerts() if "p95" in a.rule and not a.tags]
    # all in the (5, 7.5] bucket: Prometheus interpolates 95 % of the way into it
    assert p95.value == 7.375
    assert p95.summary == "High 95th percentile response time: 7.375s (> 5s)"
    svc.close()


def test_the_config_redefines_or_turns_off_a_built_in_rule(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(
        CONFIG
        + "alerts:\n  performance:\n"
        + "    high_error_rate:\n"
        + "      expr: sum(count_over_time(http_request_duration_seconds{status=~'5..'}[5m]))"
        + " / sum(count_over_time(http_request_duration_seconds[5m])) > 0.6\n"
        + "    high_mean_response_time:\n"
        + "      {expr: vector(1), enabled: false}\n"
    )
    svc = service(tmp_path)
    record(svc, 10, 200, seconds=3.0)
    record(svc, 10, 500, seconds=3.0)
    assert [e.rule for e in svc.engine.evaluate()] == []  # 50 % < 60 %; mean rule off
    record(svc, 20, 500, seconds=3.0)
    fired = [e for e in svc.engine.evaluate() if e.state.value == "firing"]
    # 75 %: the config's rule (overall only), not the built-in one (also per endpoint)
    assert [(e.rule, dict(e.tags)) for e in fired] == [("performance.high_error_rate", {})]
    svc.close()


def test_status_classes_count_as_errors_too(tmp_path: Path) -> None:
    """With track_error_details off the status tag is "5xx"/"4xx": still errors."""
    (tmp_path / "monitoring.yaml").write_text(
        CONFIG + "performance:\n  error_tracking: {track_error_details: false}\n"
    )
    clock = ManualClock(T0)
    svc = MonitoringService(tmp_path / "monitoring.yaml", write_logs=False, clock=clock)
    for status in (200, 404, 503, 200):
        clock.advance("1s")
        svc.record_request("/api/chat", 0.1, status)
    svc.recorder.flush()
    assert {s.tags["status"] for s in svc.store.query(REQUEST_METRIC)} == {"2xx", "4xx", "5xx"}
    firing = {(e.rule, e.value) for e in svc.engine.evaluate() if e.state.value == "firing"}
    assert firing == {("performance.high_error_rate", 0.5)}
    svc.close()


def _by_endpoint(store: Store, expr: str, at: float) -> dict[str, dict[str, Any]]:
    """An instant query's rows by their endpoint label ('*': none, the overall row)."""
    rows = store.promql(expr, time=at).to_dict("records")
    return {(r["endpoint"] if isinstance(r.get("endpoint"), str) else "*"): r for r in rows}


def test_error_and_mean_rules_are_the_reports_figures_and_p95_estimates_them() -> None:
    """On random traffic the error and mean rules' values are exactly the report's figures
    (the same requests, the same (t - 5m, t] window); the p95 rule's bucket estimate
    and the exact p95 disagree on which side of 5 s they lie only when about 5 % of the
    window's requests are slower than 5 s (the traffic drifts across that share)."""
    rng = np.random.default_rng(20261201)
    clock = ManualClock(T0)
    store = open_store("memory://")
    recorder = Recorder(store, clock=clock, flush_interval=None)
    zero = PerformanceThresholds(
        mean_seconds=0.0, error_rate=0.0, p95_seconds=0.0, slow_request_seconds=5.0
    )
    exprs = {n: e.replace(" > 0.0", "") for n, e in expressions(zero).items()}
    agree = evaluations = 0
    for step in range(1, 121):  # 20 minutes: a flush every 10 s, an evaluation a minute
        slow_share = 0.15 * (1 + math.sin(step / 9))  # drifts across the 5 % of the p95
        for _ in range(int(rng.integers(0, 12))):
            endpoint = str(rng.choice(["/a", "/b", "/c"]))
            status = int(rng.choice([200, 200, 200, 404, 500]))
            seconds = float(rng.uniform(5, 9) if rng.random() < slow_share else rng.gamma(2, 0.4))
            at = clock.now() - float(rng.uniform(0, 10))
            recorder.record_request(endpoint, seconds, status, timestamp=at)
        recorder.flush()
        if step % 6:
            clock.advance("10s")
            continue
        now = clock.now_ns()
        found = store.query(REQUEST_METRIC, None, None)
        summary = summarize_series(found, now - 300 * NS_PER_S + 1, now + 1, zero)
        exact = {
            ("*" if p.endpoint == OVERALL else p.endpoint): p
            for p in (summary.overall, *summary.endpoints.values())
            if p.count
        }
        values = {name: _by_endpoint(store, expr, clock.now()) for name, expr in exprs.items()}
        for where, perf in exact.items():
            error = values["high_error_rate"].get(where, {}).get("value", 0.0)
            assert error == pytest.approx(perf.error_rate, rel=1e-12, abs=0), (step, where)
            mean = values["high_mean_response_time"][where]["value"]
            assert mean == pytest.approx(perf.mean_seconds, rel=1e-12), (step, where)
            p95 = values["high_p95_response_time"].get(where, {}).get("value")
            if p95 is not None:
                evaluations += 1
                if (p95 > 5.0) == (perf.percentiles_seconds["p95"] > 5.0):
                    agree += 1
                else:  # only near the threshold: about 5 % of the requests slower than 5 s
                    assert 0.04 < perf.slow_requests / perf.count < 0.15, (step, where)
        clock.advance("10s")
    print(f"p95 > 5 s: bucket estimate agrees with the exact p95 in {agree}/{evaluations}")
    assert evaluations > 50
    recorder.close()
