"""Every panel of the exported Grafana dashboard is PromQL that metricskit's own HTTP API
answers, with data, and that a real Prometheus answers the same way.

The samples of every default dashboard metric are recorded through a Recorder (gauges and
counters every 15 s, requests as the histogram the Recorder keeps), 40 minutes from a fixed
time, off the query's step grid. A ``metricskit serve`` process serves the SQLite store;
Prometheus 2.42 is given the same samples under the names ``/metrics`` exposes. Each
panel's expression goes to both as the ``query_range`` Grafana sends.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

import metricskit as mk
from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS, MetricKind, describe
from metricskit.model import Selector
from metricskit.query._select import candidate
from metricskit.recorder import Recorder
from metricskit.report.grafana import dashboard
from tests.interop.prom import OMSeries, backfilled_prometheus, openmetrics_text
from tests.interop.test_prom_api_prometheus import _compare
from tests.services import binary, metricskit_serve

T0 = 1_700_000_040  # a whole minute in the past: both sides hold exactly these samples
MINUTES = 40
RANGE = {"start": T0 + 600, "end": T0 + (MINUTES - 1) * 60, "step": 60}
METRICS = [m for section in DEFAULT_DASHBOARD_SECTIONS.values() for m in section]


def _targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel of the default dashboard."""
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def _record(store: mk.Store) -> None:
    rng = np.random.default_rng(20261201)
    recorder = Recorder(store, flush_interval=None)
    totals = dict.fromkeys(METRICS, 0.0)
    for minute in range(MINUTES):
        base = T0 + minute * 60
        for i in range(4):  # every 15 s, 7.321 s off the minute grid of the queries
            at = base + i * 15 + 7.321
            for name in METRICS:
                kind = describe(name).kind
                if kind is MetricKind.GAUGE:
                    recorder.record(name, float(rng.uniform(1, 90)), timestamp=at)
                elif kind is MetricKind.COUNTER:
                    totals[name] += float(rng.integers(100, 5000))
                    recorder.record(name, totals[name], timestamp=at)
        for j in range(20):  # requests every 3 s, off the grid too
            recorder.record_request(
                str(rng.choice(["/api/users", "/api/orders"])),
                float(rng.lognormal(-3, 0.8)),
                int(rng.choice([200, 200, 200, 404, 500])),
                timestamp=base + j * 3 + 1.117,
            )
        recorder.flush()  # the histogram's counters get a sample per flush
    recorder.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("grafana")
    store = mk.open_store(f"sqlite:///{folder / 'metrics.db'}")
    try:
        _record(store)
    finally:
        store.close()
    (folder / "monitoring.yaml").write_text(
        "storage: {type: sqlite, connection_string: metrics.db}\n"
    )
    return folder


@pytest.fixture(scope="module")
def served(workdir: Path) -> Iterator[str]:
    proc, base = metricskit_serve(workdir)
    try:
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _as_exposed(db: Path) -> list[OMSeries]:
    """The store's samples under the names and units PromQL (and /metrics) give them."""
    store = mk.open_store(f"sqlite:///{db}")
    out = []
    try:
        for key in store.backend.select(Selector()):
            c = candidate(key)
            labels = dict(c.labels)
            name = labels.pop("__name__")
            series = store.backend.read(key, 0, 2**62)
            ms = series.timestamps // 1_000_000
            out.append(
                (
                    name,
                    labels,
                    list(zip(ms.tolist(), (series.values * c.scale).tolist(), strict=True)),
                )
            )
    finally:
        store.close()
    return out


def test_the_dashboard_has_a_query_for_every_metric() -> None:
    targets = _targets()
    assert len(targets) == len(METRICS) - 1 + 5  # the request histogram draws five
    histogram = [e for _t, e in targets if "http_request_duration_seconds" in e]
    assert sum(e.startswith("histogram_quantile(") for e in histogram) == 3


@pytest.mark.parametrize(("title", "expr"), _targets())
def test_every_panel_answers_with_data_from_metricskit_serve(
    served: str, title: str, expr: str
) -> None:
    params: dict[str, Any] = {"query": expr, **RANGE}
    body = requests.get(f"{served}/api/v1/query_range", params=params, timeout=60).json()
    assert body["status"] == "success", (title, body)
    assert body["data"]["resultType"] == "matrix"
    result = body["data"]["result"]
    assert result, f"{title}: {expr} has no data"
    steps = (RANGE["end"] - RANGE["start"]) // RANGE["step"] + 1
    assert any(len(series["values"]) == steps for series in result), (title, result)
    values = np.array([float(v) for s in result for _t, v in s["values"]])
    assert np.isfinite(values).all() and (values >= 0).all(), (title, values)
    if "status=~" in expr:  # the error rate is a ratio
        assert (values <= 1).all() and values.max() > 0
    instant = requests.post(
        f"{served}/api/v1/query", data={"query": expr, "time": RANGE["end"]}, timeout=60
    ).json()
    assert instant["status"] == "success" and instant["data"]["result"], (title, instant)


def test_quantile_panels_are_ordered(served: str) -> None:
    def quantiles(q: str) -> dict[str, list[float]]:
        expr = next(e for _t, e in _targets() if e.startswith(f"histogram_quantile(0.{q},"))
        body = requests.get(
            f"{served}/api/v1/query_range", params={"query": expr, **RANGE}, timeout=60
        ).json()
        return {
            s["metric"]["endpoint"]: [float(v) for _t, v in s["values"]]
            for s in body["data"]["result"]
        }

    p50, p95, p99 = quantiles("50"), quantiles("95"), quantiles("99")
    assert set(p50) == {"/api/users", "/api/orders"}
    for endpoint, low in p50.items():
        assert all(a <= b <= c for a, b, c in zip(low, p95[endpoint], p99[endpoint], strict=True))


@pytest.mark.services
def test_every_panel_answers_the_same_from_prometheus(
    served: str, workdir: Path, tmp_path: Path
) -> None:
    """The panels are valid PromQL for Prometheus too, and over the same samples both
    answer the same JSON (label sets, timestamps, values to 1e-9)."""
    problems: list[str] = []
    with backfilled_prometheus(
        tmp_path, openmetrics_text(_as_exposed(workdir / "metrics.db"))
    ) as prom:
        for title, expr in _targets():
            params: dict[str, Any] = {"query": expr, **RANGE}
            theirs = requests.get(f"{prom}/api/v1/query_range", params=params, timeout=60)
            assert theirs.json()["status"] == "success", (title, theirs.text)
            assert theirs.json()["data"]["result"], f"{title}: Prometheus has no data for {expr}"
            ours = requests.get(f"{served}/api/v1/query_range", params=params, timeout=60)
            problems += _compare(f"{title}: {expr}", ours, theirs)
    assert not problems, "\n".join(problems)


def test_promtool_checks_every_panel_expression(tmp_path: Path) -> None:
    """``promtool check rules`` parses each expression with Prometheus' own parser."""
    panels = [{"record": f"panel:{i}", "expr": e} for i, (_t, e) in enumerate(_targets())]
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": panels}]})
    )
    done = subprocess.run(
        [binary("promtool"), "check", "rules", str(tmp_path / "panels.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(panels)} rules found" in done.stdout
