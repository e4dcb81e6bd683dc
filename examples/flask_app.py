"""A Flask app monitored by metricskit: the seed's "Application Integration", runnable.

Serve it, with the collector checking its three health endpoints and the example config's
alert rules running::

    METRICSKIT_CONFIG=examples/monitoring.yaml .venv/bin/python examples/flask_app.py --port 5000

then send it some traffic and ask for the health report::

    curl -s -X POST localhost:5000/api/chat -H 'content-type: application/json' \\
         -d '{"message": "hello", "model": "claude-sonnet"}'
    METRICSKIT_CONFIG=examples/monitoring.yaml .venv/bin/metricskit health

``--selftest`` (what CI runs) serves the app on a free port, sends a little traffic
including failures and slow requests, waits for the collector to have checked the health
endpoints, prints the health report's overall status and exits 0 (1 if the app or the
monitoring misbehaved).

The request hooks are the seed's, word for word. ``--integration init_app`` uses the
one-line alternative instead, :func:`metricskit.integrations.flask.init_app`, which tags
requests by URL rule (``/api/chat``) rather than by view name (``chat``) and also counts
requests that raised.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from metricskit.service import MonitoringService

PRICE_PER_1K_TOKENS = {"claude-sonnet": 0.015, "claude-haiku": 0.00125}
"""USD per thousand tokens of the pretend models the chat endpoint "calls"."""
DEFAULT_MODEL = "claude-sonnet"

INDEX_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>metricskit Flask example</title></head>
<body><h1>metricskit Flask example</h1>
<p>POST JSON <code>{"message": "...", "model": "claude-sonnet"}</code> to
<code>/api/chat</code>; the health check is <code>/api/health</code>.</p></body></html>
"""

# The selftest's config when $METRICSKIT_CONFIG names none: an in-memory store, a one
# second collection, the app's own URL checked, and a low slow-request threshold so the
# selftest's deliberately slow requests show up as such.
SELFTEST_CONFIG = """
collection:
  interval_seconds: 1
  enabled_metrics: {business: []}
storage: {type: memory}
health_checks: {app_url: "${APP_URL}"}
performance:
  response_time_tracking: {slow_request_threshold_ms: 100}
alerts:
  application:
    app_down:
      metric: app.health.status
      threshold: 0.5
      operator: lt
      duration_seconds: 0
      severity: critical
      channels: [log]
"""


class ModelError(Exception):
    """The (pretend) model provider failed."""


def call_model(message: str, model: str, *, latency_ms: float, fail: bool) -> tuple[str, float]:
    """Stand-in for an AI API call: returns the reply and its cost in USD."""
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)
    if fail:
        raise ModelError(f"{model} is overloaded, try again")
    tokens = max(1, len(message.split())) * 40
    return f"echo: {message}", round(tokens / 1000 * PRICE_PER_1K_TOKENS[model], 6)


def create_app(
    monitoring_service: MonitoringService | None = None, *, integration: str = "seed"
) -> Flask:
    """The app, recording into ``monitoring_service`` (default: the shared instance).

    ``integration`` is ``"seed"`` (the guide's before/after-request hooks) or
    ``"init_app"`` (:func:`metricskit.integrations.flask.init_app`).
    """
    if monitoring_service is None:
        # the seed's import; the shared instance is created here, on first use, from
        # $METRICSKIT_CONFIG (or config/monitoring.yaml, monitoring.yaml, the defaults)
        from metricskit.service import monitoring_service
    monitoring = monitoring_service
    app = Flask(__name__)

    if integration == "init_app":
        from metricskit.integrations.flask import init_app

        init_app(app, monitoring_service.recorder)
    elif integration == "seed":

        @app.before_request
        def before_request() -> None:
            request.start_time = time.time()  # type: ignore[attr-defined]

        @app.after_request
        def after_request(response: Any) -> Any:
            if hasattr(request, "start_time"):
                response_time = time.time() - request.start_time
                monitoring_service.record_request(
                    endpoint=request.endpoint or request.path,
                    response_time=response_time,
                    status_code=response.status_code,
                )
            return response

    else:
        raise ValueError(f"integration must be 'seed' or 'init_app', not {integration!r}")

    def record_error(status: str) -> None:
        monitoring.record_custom_metric(
            "business.error", 1.0, tags={"type": status, "endpoint": "/api/chat"}
        )

    # The three endpoints the collector's health checks expect (health_checks.app_url).
    @app.get("/api/health")
    def health() -> Any:
        return jsonify(status="ok", time=time.time())

    @app.get("/")
    def index() -> Any:
        return INDEX_HTML

    @app.get("/api/auth/me")
    def auth_me() -> Any:
        # no sessions in this example: the auth service answers "not signed in"
        return jsonify(error="not authenticated"), 401

    @app.post("/api/chat")
    def chat() -> Any:
        body = request.get_json(silent=True) or {}
        message = str(body.get("message", ""))
        model = str(body.get("model", DEFAULT_MODEL))
        if model not in PRICE_PER_1K_TOKENS:
            record_error("400")
            return jsonify(error=f"unknown model {model!r}"), 400
        # demo knobs, so the monitoring has slow requests and failures to see
        latency_ms = float(body.get("simulate_latency_ms", 0))
        fail = bool(body.get("simulate_error", False))
        monitoring.record_custom_metric("business.ai_call", 1.0, tags={"model": model})
        try:
            reply, cost = call_model(message, model, latency_ms=latency_ms, fail=fail)
        except ModelError as exc:
            record_error("500")
            return jsonify(error=str(exc)), 500
        monitoring.record_custom_metric("business.ai_cost", cost, tags={"model": model})
        return jsonify(reply=reply, model=model, cost_usd=cost)

    return app


class AppServer:
    """The app served by werkzeug on 127.0.0.1 in a background thread."""

    def __init__(self, app: Flask, port: int) -> None:
        self.httpd = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_traffic(base: str) -> list[str]:
    """A little of everything: pages, chats, failures, slow chats; returns what went wrong."""
    plan: list[tuple[str, str, dict[str, Any] | None, int]] = [
        ("GET", "/", None, 200),
        ("GET", "/api/health", None, 200),
        ("GET", "/api/auth/me", None, 401),
        ("GET", "/no/such/page", None, 404),
        ("POST", "/api/chat", {"message": "hi", "model": "gpt-x"}, 400),
    ]
    plan += [("POST", "/api/chat", {"message": f"question {i}"}, 200) for i in range(10)]
    plan += [("POST", "/api/chat", {"message": "boom", "simulate_error": True}, 500)] * 3
    slow = {"message": "think hard", "model": "claude-haiku", "simulate_latency_ms": 150}
    plan += [("POST", "/api/chat", slow, 200)] * 4
    problems = []
    with requests.Session() as session:
        for method, path, body, expected in plan:
            got = session.request(method, base + path, json=body, timeout=10).status_code
            if got != expected:
                problems.append(f"{method} {path}: expected {expected}, got {got}")
    return problems


def _wait_for_checks(monitoring: MonitoringService, timeout: float = 30.0) -> dict[str, Any]:
    """The health report once the collector has checked all three endpoints."""
    deadline = time.monotonic() + timeout
    while True:
        report = monitoring.generate_health_report()
        if len([c for c in report["components"] if c["kind"] == "http"]) >= 3:
            return report
        if time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def selftest(integration: str) -> int:
    """Serve on a free port, send traffic, print the overall status; 0 unless broken."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log lines
    port = free_port()
    os.environ["APP_URL"] = f"http://127.0.0.1:{port}"  # ${APP_URL} in the config
    with tempfile.TemporaryDirectory(prefix="metricskit-selftest-") as scratch:
        named = os.environ.get("METRICSKIT_CONFIG")
        if not named:
            # the service's log and status files land beside the config: in scratch
            named = os.path.join(scratch, "monitoring.yaml")
            with open(named, "w", encoding="utf-8") as f:
                f.write(SELFTEST_CONFIG)
        with MonitoringService(named) as monitoring:
            app = create_app(monitoring, integration=integration)
            with AppServer(app, port) as server:
                monitoring.start_monitoring()
                problems = send_traffic(server.url)
                report = _wait_for_checks(monitoring)
                monitoring.stop_monitoring()
    down = [f"{c['name']}: {c['reason']}" for c in report["components"] if c["status"] != "up"]
    checked = len(report["components"])
    overall = report["performance"]["overall"]
    print(
        f"requests recorded: {overall['count']}, errors: {overall['errors']}, "
        f"slow: {overall['slow_requests']}"
    )
    for issue in report["performance_issues"]:
        print(f"performance issue: {issue['message']}")
    print(f"overall status: {report['overall_status']}")
    if checked < 3:
        problems.append(f"the collector checked {checked} of the 3 health endpoints")
    problems += [f"health check down: {d}" for d in down]
    if overall["count"] < 22:  # the traffic above, whatever the health checks add
        problems.append(f"only {overall['count']} requests were recorded")
    for problem in problems:
        print(f"selftest: {problem}", file=sys.stderr)
    return 1 if problems else 0


def serve(port: int, interval: float | None, integration: str) -> int:
    """Run the app with monitoring until Ctrl-C."""
    # examples/monitoring.yaml checks ${APP_URL:-http://127.0.0.1:5000}: point it at us
    os.environ.setdefault("APP_URL", f"http://127.0.0.1:{port}")
    app = create_app(integration=integration)
    from metricskit.service import monitoring_service

    if monitoring_service.config.health_checks.app_url is None:
        print(
            "note: health_checks.app_url is not set, so the collector does not check this "
            "app; try METRICSKIT_CONFIG=examples/monitoring.yaml",
            file=sys.stderr,
        )
    metrics_server = None
    if monitoring_service.config.integrations.prometheus.enabled:
        metrics_server = monitoring_service.start_server()
        print(
            f"metrics: {metrics_server.url}{monitoring_service.config.integrations.prometheus.path}"
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops as cleanly as Ctrl-C
    try:
        with AppServer(app, port) as server:
            # listening first, so the collector's first health checks find the app up
            monitoring_service.start_monitoring(interval)
            print(f"serving {server.url} (store {monitoring_service.store}); Ctrl-C stops")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        monitoring_service.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve (or run the selftest)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "5000")),
        help="port on 127.0.0.1 (default: $PORT or 5000)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between collections (default: collection.interval_seconds)",
    )
    parser.add_argument(
        "--integration",
        choices=["seed", "init_app"],
        default="seed",
        help="the seed's request hooks, or metricskit.integrations.flask.init_app",
    )
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="free port, a little traffic, print the overall status, exit (for CI)",
    )
    args = parser.parse_args(argv)
    if args.selftest:
        return selftest(args.integration)
    return serve(args.port, args.interval, args.integration)


if __name__ == "__main__":
    sys.exit(main())
