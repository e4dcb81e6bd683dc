"""Our /metrics output and Grafana queries against the real Prometheus from Debian."""

import re
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.report.grafana import dashboard
from metricskit.server.app import MetricsServer
from metricskit.server.exposition import generate
from tests.services import binary, free_port, running

NOW = int(time.time())

ROWS = [
    ("system.cpu.usage_percent", {"host": "web-1"}, 42.5),
    ("system.memory.usage_percent", {"host": "web-1"}, 61.0),
    ("system.memory.available_gb", {"host": "web-1"}, 2.0),
    ("system.disk.usage_percent", {"host": "web-1"}, 70.0),
    ("system.load.1min", {"host": "web-1"}, 0.5),
    ("system.network.bytes_sent", {"host": "web-1"}, 123456.0),
    ("system.network.bytes_recv", {"host": "web-1"}, 654321.0),
    ("app.health.status", {"check": "api_health"}, 1.0),
    ("app.health.response_time_ms", {"check": "api_health", "url": "http://x/api/health"}, 120.0),
    ("db.status", {"database": "main"}, 1.0),
    ("db.connection_time_ms", {"database": "main"}, 3.0),
    ("business.users.active_sessions", {}, 12.0),
    ("business.ai_calls.total", {"model": "claude-sonnet"}, 17.0),
    ("business.ai_calls.cost_today", {}, 1.25),
    ("business.errors.rate_per_hour", {}, 0.5),
    ("business.user_signups", {"source": 'web "beta"'}, 5.0),
]


def _store() -> mk.Store:
    store = mk.open_store("memory://")
    for name, tags, value in ROWS:
        store.write([Series(SeriesKey.of(name, tags), np.array([NOW * 10**9]), np.array([value]))])
    durations = [0.01, 0.2, 0.3, 1.2, 6.0]
    with mk.Recorder(store) as rec:
        for status in (200, 500):
            for i, d in enumerate(durations):
                rec.record_request("/api/chat", d, status, timestamp=NOW - 4 + i)
    # Series that used to break the whole scrape: a gauge named like the histogram's
    # _count sample, and histogram parts tagged le. Each is left out; the rest is scraped.
    t = np.array([NOW * 10**9])
    bad = {"endpoint": "/api/chat", "status": "200"}
    store.write([Series(SeriesKey.of("http.request.duration_seconds_count", bad), t, np.ones(1))])
    le = {"le": "x"}
    for part in ("count", "sum"):
        name = f"http.request.duration_seconds:{part}"
        store.write([Series(SeriesKey.of(name, le), t, np.ones(1))])
    return store


def test_promtool_check_metrics_finds_no_problems() -> None:
    promtool = binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate(_store()), capture_output=True
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@pytest.fixture(scope="module")
def prometheus_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping a metricskit /metrics server every second."""
    prometheus = binary("prometheus")
    tmp = tmp_path_factory.mktemp("prom")
    with MetricsServer(_store(), port=0) as server:
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: metricskit\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
        )
        port = free_port()
        argv = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running(argv, f"http://127.0.0.1:{port}/-/ready", log=tmp / "prom.log"):
            yield f"http://127.0.0.1:{port}/api/v1"


def _query(api: str, expr: str) -> list[dict]:
    body = requests.get(f"{api}/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _eventually(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result[0] or time.monotonic() > deadline:
            return result[1]
        time.sleep(0.5)


def test_prometheus_scrapes_what_we_recorded(prometheus_api: str) -> None:
    expected = {
        'system_cpu_usage_percent{host="web-1"}': 42.5,
        'system_memory_available_bytes{host="web-1"}': 2.0 * 2**30,
        'app_health_response_time_seconds{check="api_health"}': 0.12,
        'system_network_bytes_sent_total{host="web-1"}': 123456.0,
        'business_ai_calls_total{model="claude-sonnet"}': 17.0,
        'business_user_signups{source="web \\"beta\\""}': 5.0,
        'http_request_duration_seconds_count{endpoint="/api/chat",status="200"}': 5.0,
        'http_request_duration_seconds_bucket{endpoint="/api/chat",status="200",le="0.25"}': 2.0,
    }

    def check():  # type: ignore[no-untyped-def]
        got = {}
        for query in expected:
            vector = _query(prometheus_api, query)
            got[query] = float(vector[0]["value"][1]) if vector else None
        return got == expected, got

    assert _eventually(check) == expected
    labels = _query(prometheus_api, "system_cpu_usage_percent")[0]["metric"]
    assert labels == {
        "__name__": "system_cpu_usage_percent",
        "host": "web-1",
        "instance": labels["instance"],
        "job": "metricskit",
    }


def test_every_grafana_query_runs_on_prometheus(prometheus_api: str) -> None:
    model = dashboard()
    exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", [])]
    assert exprs
    # rate() needs two scrapes in its window; wait for the counter to have them.
    _eventually(lambda: (bool(_query(prometheus_api, "rate(business_ai_calls_total[5m])")), None))
    for expr in exprs:
        body = requests.get(f"{prometheus_api}/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", (expr, body)
        names = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*(?:\{|\[)", expr))
        for name in names:
            assert _query(prometheus_api, f"count({name})"), f"{name} in {expr!r} is not exposed"
