"""Our /metrics output against the real Prometheus tools from Debian's packages."""

import subprocess
import time
from pathlib import Path

import numpy as np
import requests

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.server import MetricsServer
from tests.services import binary, free_port, running

NOW = int(time.time())


def _store() -> mk.Store:
    store = mk.open_store("memory://")
    rows = [
        ("system.cpu.usage_percent", {"host": "web-1"}, 42.5),
        ("system.memory.available_gb", {"host": "web-1"}, 2.0),
        (
            "app.health.response_time_ms",
            {"check": "api_health", "url": "http://x/api/health"},
            120.0,
        ),
        ("system.network.bytes_sent", {"host": "web-1"}, 123456.0),
        ("business.ai_calls.total", {"model": "claude-sonnet"}, 17.0),
        ("business.user_signups", {"source": 'web "beta"'}, 5.0),
    ]
    for name, tags, value in rows:
        store.write([Series(SeriesKey.of(name, tags), np.array([NOW * 10**9]), np.array([value]))])
    durations = np.array([0.01, 0.2, 0.3, 1.2, 6.0])
    key = SeriesKey.of("http.request.duration_seconds", {"endpoint": "/api/chat", "status": "200"})
    store.write([Series(key, (NOW * 10**9 - np.arange(5)[::-1]).astype(np.int64), durations)])
    return store


def test_promtool_check_metrics_finds_no_problems() -> None:
    promtool = binary("promtool")
    from metricskit.exposition import generate

    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate(_store()), capture_output=True
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_prometheus_scrapes_what_we_recorded(tmp_path: Path) -> None:
    prometheus = binary("prometheus")
    store = _store()
    with MetricsServer(store, port=0) as server:
        config = tmp_path / "prometheus.yml"
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
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running(argv, f"http://127.0.0.1:{port}/-/ready", log=tmp_path / "prom.log"):
            api = f"http://127.0.0.1:{port}/api/v1/query"
            expected = {
                'system_cpu_usage_percent{host="web-1"}': 42.5,
                'system_memory_available_bytes{host="web-1"}': 2.0 * 2**30,
                'app_health_response_time_seconds{check="api_health"}': 0.12,
                'system_network_bytes_sent_total{host="web-1"}': 123456.0,
                'business_ai_calls_total{model="claude-sonnet"}': 17.0,
                'business_user_signups{source="web \\"beta\\""}': 5.0,
                'http_request_duration_seconds_count{endpoint="/api/chat"}': 5.0,
                'http_request_duration_seconds_bucket{endpoint="/api/chat",le="0.25"}': 2.0,
            }
            deadline = time.monotonic() + 30
            while True:
                got = {}
                for query in expected:
                    result = requests.get(api, params={"query": query}, timeout=5).json()
                    vector = result["data"]["result"]
                    got[query] = float(vector[0]["value"][1]) if vector else None
                if got == expected or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert got == expected
            full = requests.get(api, params={"query": "system_cpu_usage_percent"}, timeout=5).json()
            labels = full["data"]["result"][0]["metric"]
            assert labels["host"] == "web-1"
            assert labels["job"] == "metricskit"
