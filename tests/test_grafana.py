import json

from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS
from metricskit.report.grafana import SCHEMA_VERSION, dashboard, panel_queries


def test_one_row_per_section_one_panel_per_metric() -> None:
    model = dashboard(
        {
            "system_overview": ["system.cpu.usage_percent", "system.load.1min"],
            "mine": ["business.user_signups"],
        },
        title="Team",
    )
    json.dumps(model)
    assert model["schemaVersion"] == SCHEMA_VERSION
    assert model["title"] == "Team" and len(model["uid"]) == 12
    kinds = [(p["type"], p["title"]) for p in model["panels"]]
    assert kinds == [
        ("row", "System Overview"),
        ("timeseries", "CPU utilization"),
        ("timeseries", "1-minute load average"),
        ("row", "Mine"),
        ("timeseries", "business.user_signups"),
    ]
    ids = [p["id"] for p in model["panels"]]
    assert len(set(ids)) == len(ids)
    cpu = model["panels"][1]
    assert cpu["targets"][0]["expr"] == "system_cpu_usage_percent"
    assert cpu["fieldConfig"]["defaults"]["unit"] == "percent"
    assert cpu["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # panels never overlap
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in model["panels"]]
    assert len(set(boxes)) == len(boxes)


def test_default_sections_are_the_seeds_four() -> None:
    model = dashboard()
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == [
        "System Overview",
        "Application Health",
        "Performance Metrics",
        "Business Metrics",
    ]
    panels = [p for p in model["panels"] if p["type"] == "timeseries"]
    assert len(panels) == sum(len(v) for v in DEFAULT_DASHBOARD_SECTIONS.values())


def test_queries_by_kind() -> None:
    assert panel_queries("system.network.bytes_sent") == [
        ("system.network.bytes_sent", "rate(system_network_bytes_sent_total[5m])", "__auto")
    ]
    assert panel_queries("app.health.response_time_ms")[0][1] == "app_health_response_time_seconds"
    hist = dict((t, q) for t, q, _ in panel_queries("http.request.duration_seconds"))
    assert hist["p95"].startswith("histogram_quantile(0.95, sum by (le, endpoint)")
    assert "http_request_duration_seconds_bucket" in hist["p95"]
    assert 'status=~"4..|5.."' in hist["error rate"]


def test_push_creates_the_dashboard_through_grafanas_api() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import pytest

    from metricskit.errors import MetricsKitError
    from metricskit.report.grafana import push

    received: list[tuple[str, str | None, dict]] = []

    class FakeGrafanaApi(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers.get("Authorization"), body))
            code = 200 if body["dashboard"]["title"] != "refused" else 412
            reply = json.dumps({"status": "success", "url": f"/d/{body['dashboard']['uid']}/x"})
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafanaApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        model = dashboard(title="Team")
        url = push(model, base + "/", api_key="glsa_secret")
        assert url == f"{base}/d/{model['uid']}/x"
        path, auth, body = received[0]
        assert path == "/api/dashboards/db" and auth == "Bearer glsa_secret"
        assert body["overwrite"] is True and body["dashboard"] == model
        with pytest.raises(MetricsKitError, match="HTTP 412"):
            push(dashboard(title="refused"), base)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(MetricsKitError, match="unreachable") as info:
        push(model, base, api_key="glsa_secret")
    assert "glsa_secret" not in str(info.value)
