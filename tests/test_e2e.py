"""End to end, as the issue asks: a Flask app monitored by metricskit, all on 127.0.0.1.

The example app (``examples/flask_app.py``) is served by werkzeug in a thread with the
seed's request hooks (and, in the critical run, ``integrations.flask.init_app``), recording
into a real :class:`MonitoringService` over a SQLite file. The collector checks the app's
three health endpoints, a CPU rule that always holds fires through the ``webhook`` channel
to a capturing HTTP server started here, traffic includes failures and slow requests, and
then the ``metricskit`` command, run as a separate process on the same config, reports:
``health`` exits 1 (warning) or 2 (critical) with the seed's recommendations, ``alerts
list`` shows the alert, and ``dashboard --output html`` writes a page headless Chromium
renders with its SVG charts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import requests

import metricskit as mk
from metricskit.report.recommendations import PLAYBOOK
from metricskit.service import MonitoringService
from tests.interop.test_dashboard_chromium import chromium, page_errors
from tests.services import binary, free_port

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app.py"
RULE = "system.high_cpu"
SLOW_MS = 120
CHECKS = ["/", "/api/auth/me", "/api/health"]
RANK = {"critical": 0, "warning": 1, "info": 2}
# the seed's "High Response Times" actions (Troubleshooting), word for word bar the dots
SEED_SLOW_ACTIONS = [
    "Check database performance",
    "Review recent deployments",
    "Analyze slow query logs",
]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metricskit_flask_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_text(app_port: int, hook_port: int, severity: str) -> str:
    # A rule certain to fire at the first evaluation; thresholds low enough that the
    # test's slow requests (SLOW_MS) and failures are performance issues.
    return f"""
collection:
  interval_seconds: 1
storage:
  type: sqlite
  connection_string: metrics.db
health_checks:
  app_url: "http://127.0.0.1:{app_port}"
alerts:
  system:
    high_cpu:
      metric: system.cpu.usage_percent
      threshold: 0
      operator: gte
      duration_seconds: 0
      severity: {severity}
      channels: [webhook]
notifications:
  webhook:
    url: "http://127.0.0.1:{hook_port}/hooks/metricskit"
    receiver: e2e-test
performance:
  response_time_tracking:
    slow_request_threshold_ms: 50
  thresholds:
    mean_response_seconds: 0.05
    p95_response_seconds: 0.1
    error_rate_percent: 5
    min_requests: 1
"""


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 keeping every POSTed JSON body with its path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _path, _ctype, body in list(self.received)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@dataclass
class Chat:
    """One request the test sent and what came back."""

    body: dict[str, Any]
    status: int
    cost: float | None = None


@dataclass
class Scenario:
    """Everything one run left behind, for the tests to look at."""

    severity: str
    integration: str
    workdir: Path
    config: Path
    webhooks: list[tuple[str, str, Any]]
    report: dict[str, Any]
    chats: list[Chat] = field(default_factory=list)

    @property
    def chat_endpoint(self) -> str:
        # the seed's hooks tag request.endpoint (the view's name); init_app the URL rule
        return "chat" if self.integration == "seed" else "/api/chat"

    def store(self) -> mk.Store:
        return mk.open_store(f"sqlite:///{self.workdir / 'metrics.db'}")


def send_traffic(base: str) -> list[Chat]:
    """Pages, an unauthenticated call, good chats, failing chats, slow chats, a bad model."""
    chats = [{"message": f"question number {i}"} for i in range(10)]
    chats += [{"message": "boom", "simulate_error": True}] * 3
    chats += [{"message": "think", "model": "claude-haiku", "simulate_latency_ms": SLOW_MS}] * 8
    chats += [{"message": "hi", "model": "no-such-model"}]
    sent = []
    with requests.Session() as session:
        for path, expected in (("/", 200), ("/api/health", 200), ("/api/auth/me", 401)):
            assert session.get(base + path, timeout=10).status_code == expected, path
        for body in chats:
            response = session.post(base + "/api/chat", json=body, timeout=10)
            cost = response.json().get("cost_usd") if response.status_code == 200 else None
            sent.append(Chat(body, response.status_code, cost))
    return sent


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def latest_value(service: MonitoringService, name: str) -> float | None:
    values = [v for _k, _ts, v in service.store.latest(name)]
    return values[0] if len(values) == 1 else None


@pytest.fixture(
    scope="module",
    params=[("warning", "seed"), ("critical", "init_app")],
    ids=["warning-seed-hooks", "critical-init_app"],
)
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    severity, integration = request.param
    workdir = tmp_path_factory.mktemp(f"e2e-{severity}")
    example = load_example()
    hooks = WebhookReceiver()
    app_port = free_port()
    config = workdir / "monitoring.yaml"
    config.write_text(config_text(app_port, hooks.port, severity))
    service = MonitoringService(config)
    try:
        app = example.create_app(service, integration=integration)
        with example.AppServer(app, app_port) as server:
            service.start_monitoring()
            chats = send_traffic(server.url)
            ai_calls = sum(c.status in (200, 500) for c in chats)
            ai_cost = sum(c.cost or 0.0 for c in chats)

            def firing_delivered() -> bool:
                return any(p["status"] == "firing" for p in hooks.payloads())

            def three_checks_up() -> bool:
                service.recorder.flush()
                status = service.store.latest("app.health.status")
                return sorted(k.tags["check"] for k, _ts, v in status if v == 1.0) == CHECKS

            def business_derived() -> bool:
                # a collection can read a flush half done; wait for one that saw it all
                service.recorder.flush()
                cost = latest_value(service, "business.ai_calls.cost_today")
                return latest_value(
                    service, "business.ai_calls.total"
                ) == ai_calls and cost == pytest.approx(ai_cost)

            wait_for("the webhook to receive the firing alert", firing_delivered)
            wait_for("the collector to find the three health endpoints up", three_checks_up)
            wait_for("the derived business metrics to count the chats", business_derived)
            report = service.generate_health_report()
            service.stop_monitoring()
    finally:
        service.close()
        hooks.close()
    yield Scenario(severity, integration, workdir, config, hooks.received, report, chats)


def metricskit(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, configured the way the service is: $METRICSKIT_CONFIG."""
    env = {**os.environ, "METRICSKIT_CONFIG": str(scenario.config)}
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=scenario.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_app_answered_as_written(scenario: Scenario) -> None:
    statuses = [c.status for c in scenario.chats]
    assert statuses.count(200) == 18 and statuses.count(500) == 3 and statuses.count(400) == 1


def test_cpu_alert_reaches_the_webhook_in_alertmanager_format(scenario: Scenario) -> None:
    payloads = [(path, ctype, json.loads(body)) for path, ctype, body in scenario.webhooks]
    firing = [
        p
        for p in payloads
        if p[2]["status"] == "firing" and p[2]["groupLabels"]["alertname"] == RULE
    ]
    assert len(firing) == 1, "one notification on firing, not one per evaluation"
    # the seed's error-rate threshold is an alert too: 4 of the chats failed (> 5 %)
    others = {p[2]["groupLabels"]["alertname"] for p in payloads} - {RULE}
    assert "performance.high_error_rate" in others
    path, ctype, payload = firing[0]
    assert path == "/hooks/metricskit" and ctype.startswith("application/json")
    assert payload["version"] == "4"
    assert payload["receiver"] == "e2e-test"
    assert payload["groupLabels"] == {"alertname": RULE}
    assert payload["groupKey"] == f'{{}}:{{alertname="{RULE}"}}'
    assert payload["truncatedAlerts"] == 0
    [alert] = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": RULE,
        "severity": scenario.severity,
        "metric": "system.cpu.usage_percent",
    }
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["startsAt"].endswith("Z") and alert["fingerprint"]
    assert alert["annotations"]["operator"] == "gte"
    assert float(alert["annotations"]["threshold"]) == 0.0
    assert 0.0 <= float(alert["annotations"]["value"]) <= 100.0
    assert payload["commonLabels"] == alert["labels"]


def test_requests_and_business_metrics_reach_the_store(scenario: Scenario) -> None:
    store = scenario.store()
    try:
        chat = store.frame(
            "http.request.duration_seconds", tags={"endpoint": scenario.chat_endpoint}
        )
        by_status = chat.groupby("status", observed=True)["value"]
        assert by_status.count().to_dict() == {"200": 18, "400": 1, "500": 3}
        assert (chat["value"] >= SLOW_MS / 1000).sum() >= 8, "the slow chats were timed"
        # the user's unauthenticated call is recorded; the health checker's expected 401s
        # (it sends X-Metricskit-Health-Check) are not application traffic
        unauthorized = store.query("http.request.duration_seconds", tags={"status": "401"})
        assert sum(len(s) for s in unauthorized) == 1

        successes = [c for c in scenario.chats if c.status == 200]
        costs = store.query("business.ai_cost")
        assert {s.key.tags["model"] for s in costs} == {"claude-sonnet", "claude-haiku"}
        assert sum(len(s) for s in costs) == len(successes)
        recorded = sum(float(s.values.sum()) for s in costs)
        assert recorded == pytest.approx(sum(c.cost or 0.0 for c in successes))
        calls = store.query("business.ai_call")
        assert sum(len(s) for s in calls) == 21
        # each failed chat counted once, by the example's own business.error call
        errors = store.query("business.error")
        chat_errors = {
            s.key.tags["type"]: len(s) for s in errors if s.key.tags["endpoint"] == "/api/chat"
        }
        assert chat_errors == {"500": 3, "400": 1}
        assert {s.key.tags["endpoint"] for s in errors} == {"/api/chat"}
        # the seed's derived business metrics, computed by the collector from the above
        [(_key, _ts, cost_today)] = store.latest("business.ai_calls.cost_today")
        assert cost_today == pytest.approx(recorded)
    finally:
        store.close()


def test_in_process_report_sees_checks_slowness_and_errors(scenario: Scenario) -> None:
    report = scenario.report
    assert report["overall_status"] == scenario.severity
    checks = {c["name"]: c for c in report["components"] if c["kind"] == "http"}
    assert sorted(checks) == CHECKS
    assert all(c["status"] == "up" and c["reason"] == "ok" for c in checks.values())
    assert all(c["response_time_ms"] is not None for c in checks.values())
    chat = report["performance"]["endpoints"][scenario.chat_endpoint]
    assert chat["count"] == 22 and chat["errors"] == 4 and chat["slow_requests"] >= 8
    figures = {
        i["figure"] for i in report["performance_issues"] if i["endpoint"] == chat["endpoint"]
    }
    assert {"p95_seconds", "error_rate"} <= figures


def test_health_command_exit_code_status_and_recommendations(scenario: Scenario) -> None:
    result = metricskit(scenario, "health", "--output", "json")
    assert result.returncode == {"warning": 1, "critical": 2}[scenario.severity], result.stderr
    report = json.loads(result.stdout)
    assert report["overall_status"] == scenario.severity
    [alert] = [a for a in report["active_alerts"] if a["rule"] == RULE]
    assert alert["state"] == "firing" and alert["severity"] == scenario.severity
    assert sorted(c["name"] for c in report["components"] if c["status"] == "up") == CHECKS
    recs = {r["topic"]: r for r in report["recommendations"]}
    assert {"high_cpu", "slow_responses", "high_error_rate"} <= set(recs)
    # at least the rule's severity: a busy machine (CPU > 95 % now) makes it critical anyway
    assert RANK[recs["high_cpu"]["severity"]] <= RANK[scenario.severity]
    assert any(RULE in e for e in recs["high_cpu"]["evidence"])
    assert recs["slow_responses"]["actions"] == SEED_SLOW_ACTIONS
    assert any(scenario.chat_endpoint in e for e in recs["slow_responses"]["evidence"])
    for topic in ("high_cpu", "high_error_rate"):
        assert recs[topic]["actions"] == list(PLAYBOOK[topic][1])
        assert recs[topic]["title"] == PLAYBOOK[topic][0]
    ranks = [RANK[r["severity"]] for r in report["recommendations"]]
    assert ranks == sorted(ranks), "most severe first"


def test_alerts_list_and_metrics_commands(scenario: Scenario) -> None:
    listed = metricskit(scenario, "alerts", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    alerts = [(a["rule"], a["state"]) for a in json.loads(listed.stdout)]
    assert [a for a in alerts if not a[0].startswith("performance.")] == [(RULE, "firing")]
    # the seed's performance thresholds are alerts: 4 of 22 chats failed (> 5 %)
    assert ("performance.high_error_rate", "firing") in alerts
    current = metricskit(scenario, "metrics", "--output", "json")
    assert current.returncode == 0, current.stderr
    groups = json.loads(current.stdout)
    assert 'business.ai_cost{model="claude-haiku"}' in groups["business"]
    assert any(k.startswith("app.health.status{") and v == 1.0 for k, v in groups["app"].items())


def _chromium_dom(exe: str, profile: Path, page: Path) -> tuple[str, list[str]]:
    """The DOM Chromium built from ``page``, and the page errors in its log."""
    run = chromium(exe, profile, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, page_errors(run.stderr)


@pytest.mark.services
def test_dashboard_html_renders_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    made = metricskit(scenario, "dashboard", "--output", "html", "--file", "d.html")
    assert made.returncode == 0, made.stderr
    page = scenario.workdir / "d.html"
    html = page.read_text()
    exe = binary("chromium")
    dom, errors = _chromium_dom(exe, tmp_path / "profile", page)
    assert errors == []
    assert dom.count("<svg") == html.count("<svg") > 0
    assert dom.count("<polyline") == html.count("<polyline") > 0
    assert scenario.severity.upper() in dom and RULE in dom
    assert "<script" not in dom


def test_store_holds_collected_system_metrics(scenario: Scenario) -> None:
    store = scenario.store()
    try:
        cpu = store.query("system.cpu.usage_percent")
        assert cpu and len(cpu[0]) >= 1
        assert np.all((cpu[0].values >= 0) & (cpu[0].values <= 100))
    finally:
        store.close()
