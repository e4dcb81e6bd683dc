"""Prometheus' HTTP API on `metricskit serve`, used by prometheus-api-client as a real client.

A real ``python -m metricskit serve`` process over a SQLite store written by this process;
``prometheus-api-client`` for the calls Grafana-like clients make, ``requests`` for POST,
auth and the error envelopes.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_api_client import PrometheusConnect

import metricskit as mk
from metricskit import Series, SeriesKey
from metricskit.server._prom_api import _stamp, _value
from tests.services import free_port, metricskit_serve

NOW = int(time.time()) // 60 * 60  # the data ends near now: get_current_metric_value reads now
T0 = NOW - 900


def _write(db: Path) -> None:
    store = mk.open_store(f"sqlite:///{db}")
    ts = (T0 + np.arange(0, 900, 15)) * 1_000_000_000
    for job, per_second in (("api", 4.0), ("web", 1.0)):
        counts = per_second * (ts - ts[0]) / 1e9
        store.write([Series(SeriesKey.of("http.requests.total", {"job": job}), ts, counts)])
    store.write([Series(SeriesKey.of("queue.depth", {"queue": "q1"}), ts, np.full(ts.size, 7.5))])
    store.close()


def _serve(workdir: Path, config: str) -> tuple[subprocess.Popen[str], str]:
    (workdir / "monitoring.yaml").write_text(config)
    return metricskit_serve(workdir)


@pytest.fixture(scope="module")
def promapi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("promapi")


@pytest.fixture(scope="module")
def served(promapi_dir: Path) -> Iterator[str]:
    workdir = promapi_dir
    _write(workdir / "metrics.db")
    proc, base = _serve(workdir, "storage: {type: sqlite, connection_string: metrics.db}\n")
    try:
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_prometheus_api_client_queries(served: str, promapi_dir: Path) -> None:
    prom = PrometheusConnect(url=served, disable_ssl=True)
    result = prom.custom_query(
        "sum by (job) (rate(http_requests_total[5m]))", params={"time": T0 + 600}
    )
    rates = {r["metric"]["job"]: float(r["value"][1]) for r in result}
    assert rates == pytest.approx({"api": 4.0, "web": 1.0})
    assert result[0]["value"][0] == T0 + 600

    ranged = prom.custom_query_range(
        "rate(http_requests_total[1m])",
        start_time=dt.datetime.fromtimestamp(T0 + 300, dt.timezone.utc),
        end_time=dt.datetime.fromtimestamp(T0 + 600, dt.timezone.utc),
        step="1m",
    )
    assert [r["metric"]["job"] for r in ranged] == ["api", "web"]  # a matrix is sorted
    assert [t for t, _ in ranged[0]["values"]] == [T0 + 300 + 60 * k for k in range(6)]
    assert all(v == "4" or float(v) == pytest.approx(4.0) for _, v in ranged[0]["values"])

    assert prom.get_label_names() == ["__name__", "job", "queue"]
    assert prom.get_label_values("job") == ["api", "web"]
    assert prom.all_metrics() == ["http_requests_total", "queue_depth"]
    # "current" is the real now, which in a long run is more than the 5-minute lookback
    # after NOW (taken when the module was collected): a sample from just now
    with mk.open_store(f"sqlite:///{promapi_dir / 'metrics.db'}") as store:
        key = SeriesKey.of("queue.depth", {"queue": "q1"})
        store.write([Series(key, np.array([time.time_ns()]), np.array([7.5]))])
    current = prom.get_current_metric_value("queue_depth", label_config={"queue": "q1"})
    assert [(c["metric"], c["value"][1]) for c in current] == [
        ({"__name__": "queue_depth", "queue": "q1"}, "7.5")
    ]


def test_result_types_and_post(served: str) -> None:
    def data(path: str, **params: object) -> dict[str, object]:
        resp = requests.post(f"{served}/api/v1/{path}", data=params, timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "success"
        return dict(body["data"])

    assert data("query", query="1 + 1", time=T0) == {"resultType": "scalar", "result": [T0, "2"]}
    assert data("query", query='"hi"', time=T0) == {"resultType": "string", "result": [T0, "hi"]}
    raw = data("query", query="queue_depth[30s]", time=T0 + 60)
    assert raw["resultType"] == "matrix"
    assert raw["result"] == [
        {
            "metric": {"__name__": "queue_depth", "queue": "q1"},
            "values": [[T0 + 45, "7.5"], [T0 + 60, "7.5"]],
        }
    ]
    rfc = dt.datetime.fromtimestamp(T0 + 60, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    vec = data("query", query="queue_depth / 0", time=rfc)
    assert vec["result"] == [{"metric": {"queue": "q1"}, "value": [T0 + 60, "+Inf"]}]
    scalar_range = data("query_range", query="time()", start=T0, end=T0 + 30, step=15)
    assert scalar_range["result"] == [
        {"metric": {}, "values": [[T0, str(T0)], [T0 + 15, str(T0 + 15)], [T0 + 30, str(T0 + 30)]]}
    ]
    series = requests.post(
        f"{served}/api/v1/series", data={"match[]": ['{job="api"}', "queue_depth"]}, timeout=30
    ).json()
    assert series["data"] == [
        {"__name__": "http_requests_total", "job": "api"},
        {"__name__": "queue_depth", "queue": "q1"},
    ]
    empty = requests.get(
        f"{served}/api/v1/series",
        params={"match[]": "queue_depth", "start": NOW + 3600, "end": NOW + 7200},
        timeout=30,
    ).json()
    assert empty == {"status": "success", "data": []}
    bad = requests.get(f"{served}/api/v1/label/a-b/values", timeout=30)
    assert (bad.status_code, bad.json()["errorType"]) == (400, "bad_data")
    no_match = requests.get(f"{served}/api/v1/series", timeout=30)
    assert (no_match.status_code, no_match.json()["error"]) == (
        400,
        "no match[] parameter provided",
    )


@pytest.mark.parametrize(
    ("params", "status", "kind", "message"),
    [
        ({"query": "rate(", "start": "1", "end": "2", "step": "1"}, 400, "bad_data", "parenthesis"),
        ({"query": "up", "start": "x", "end": "2", "step": "1"}, 400, "bad_data", '"start"'),
        ({"query": "up", "start": "5", "end": "2", "step": "1"}, 400, "bad_data", "before start"),
        ({"query": "up", "start": "1", "end": "2", "step": "0"}, 400, "bad_data", "zero or"),
        ({"query": "up", "start": "0", "end": "20000", "step": "1"}, 400, "bad_data", "11,000"),
        ({"query": "up[5m]", "start": "1", "end": "2", "step": "1"}, 400, "bad_data", "range vec"),
        ({"query": '"s"', "start": "1", "end": "2", "step": "1"}, 400, "bad_data", "string"),
        ({"query": "", "start": "1", "end": "2", "step": "1"}, 400, "bad_data", "query"),
        (
            {"query": "label_replace(http_requests_total, \"job\", \"x\", \"job\", \".*\")",
             "start": str(T0 + 100), "end": str(T0 + 200), "step": "60"},
            422, "execution", "same labelset",
        ),
    ],
)  # fmt: skip
def test_errors_have_prometheus_envelopes(
    served: str, params: dict[str, str], status: int, kind: str, message: str
) -> None:
    resp = requests.get(f"{served}/api/v1/query_range", params=params, timeout=30)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert (body["status"], body["errorType"]) == ("error", kind)
    assert message in body["error"]


def test_basic_auth_protects_the_api(tmp_path: Path) -> None:
    _write(tmp_path / "metrics.db")
    config = (
        "storage: {type: sqlite, connection_string: metrics.db}\n"
        "integrations: {prometheus: {basic_auth: {username: u, password: p}}}\n"
    )
    proc, base = _serve(tmp_path, config)
    try:
        denied = requests.get(f"{base}/api/v1/query", params={"query": "1"}, timeout=30)
        assert denied.status_code == 401
        prom = PrometheusConnect(url=base, disable_ssl=True, auth=("u", "p"))
        assert prom.custom_query("queue_depth", params={"time": T0 + 60})[0]["value"][1] == "7.5"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_values_and_timestamps_are_spelled_as_prometheus_spells_them() -> None:
    spelled = [_value(v) for v in (2.0, 0.1, 1e-5, 1.5e20, -0.0, float("nan"), float("-inf"))]
    assert spelled == ["2", "0.1", "0.00001", "150000000000000000000", "-0", "NaN", "-Inf"]
    assert [_value(v) for v in (1e-7, -2.5e-9, 1e21, 9.5367431640625e33)] == [
        "1e-07", "-2.5e-09", "1e+21", "9.5367431640625e+33"
    ]  # fmt: skip
    assert [_stamp(ns) for ns in (1_500_000_000, 1_050_000_000, -1_500_000_000)] == [
        "1.500", "1.050", "-1.500"
    ]  # fmt: skip


def test_alert_values_and_times_are_spelled_as_prometheus_alerts_spell_them() -> None:
    from metricskit.server._prom_rules import go_float, go_time

    spelled = [go_float(v) for v in (7.5, 2.0, 1e-7, 123456.789, -0.0, float("nan"), -math.inf)]
    assert spelled == ["7.5e+00", "2e+00", "1e-07", "1.23456789e+05", "-0e+00", "NaN", "-Inf"]
    assert [go_time(ns) for ns in (1_500_000_000, 2_000_000_000, 1_000_000_001, None)] == [
        "1970-01-01T00:00:01.5Z", "1970-01-01T00:00:02Z", "1970-01-01T00:00:01.000000001Z",
        "0001-01-01T00:00:00Z",
    ]  # fmt: skip


RULES_CONFIG = """\
storage: {type: sqlite, connection_string: metrics.db}
alerts:
  queue:
    deep:
      metric: queue.depth
      threshold: 5
      operator: gt
      severity: critical
      summary: "queue {tags[queue]} is deep"
"""


def test_rules_and_alerts_come_from_the_rule_engine_in_this_and_a_second_process(
    tmp_path: Path,
) -> None:
    from metricskit.service import MonitoringService

    _write(tmp_path / "metrics.db")
    (tmp_path / "monitoring.yaml").write_text(RULES_CONFIG)
    service = MonitoringService(str(tmp_path / "monitoring.yaml"))
    try:
        service.engine.evaluate(NOW - 60)
        server = service.start_server(port=0)
        try:
            alerts = requests.get(f"{server.url}/api/v1/alerts", timeout=30).json()
            rules = requests.post(f"{server.url}/api/v1/rules", timeout=30).json()
        finally:
            server.stop()
    finally:
        service.close()
    firing = {
        "labels": {"alertname": "queue.deep", "severity": "critical", "queue": "q1"},
        "annotations": {"summary": "queue q1 is deep"},
        "state": "firing",
        # as Go writes a time (no fraction on a whole second) and Prometheus a value (%e)
        "activeAt": dt.datetime.fromtimestamp(NOW - 60, dt.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "value": "7.5e+00",
    }
    assert alerts == {"status": "success", "data": {"alerts": [firing]}}
    groups = {g["name"]: g for g in rules["data"]["groups"]}
    (rule,) = groups["queue"]["rules"]
    assert (rule["name"], rule["type"], rule["state"], rule["query"]) == (
        "queue.deep", "alerting", "firing", "queue_depth > 5"
    )  # fmt: skip
    assert rule["alerts"] == [firing]

    # a second process (metricskit serve) restores the state the first one persisted
    proc, base = _serve(tmp_path, RULES_CONFIG)
    try:
        again = requests.get(f"{base}/api/v1/alerts", timeout=30).json()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert [a["labels"]["alertname"] for a in again["data"]["alerts"]] == ["queue.deep"]


def test_metadata_and_no_rule_engine(served: str) -> None:
    meta = requests.get(f"{served}/api/v1/metadata", timeout=30).json()["data"]
    assert meta["queue_depth"] == [{"type": "gauge", "help": "", "unit": ""}]
    assert meta["http_requests"][0]["type"] == "counter"
    one = requests.get(f"{served}/api/v1/metadata", params={"metric": "queue_depth"}, timeout=30)
    assert list(one.json()["data"]) == ["queue_depth"]

    from metricskit.server.app import MetricsServer

    with MetricsServer(mk.open_store("memory://"), port=0) as server:
        rules = requests.get(f"{server.url}/api/v1/rules", timeout=30).json()
        alerts = requests.get(f"{server.url}/api/v1/alerts", timeout=30).json()
    assert rules == {"status": "success", "data": {"groups": []}}
    assert alerts == {"status": "success", "data": {"alerts": []}}


def test_the_api_mounted_in_a_users_starlette_app(tmp_path: Path) -> None:
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from metricskit.server.app import create_app

    _write(tmp_path / "metrics.db")
    store = mk.open_store(f"sqlite:///{tmp_path / 'metrics.db'}")
    app = Starlette(routes=[Mount("/monitoring", app=create_app(store, bearer_token="t"))])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        prom = PrometheusConnect(
            url=f"http://127.0.0.1:{port}/monitoring",
            disable_ssl=True,
            headers={"Authorization": "Bearer t"},
        )
        assert prom.get_label_values("queue") == ["q1"]
        got = prom.custom_query("max(queue_depth)", params={"time": T0 + 60})
        assert got == [{"metric": {}, "value": [T0 + 60, "7.5"]}]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
