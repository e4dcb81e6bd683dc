"""One name mapping for /metrics, the Grafana dashboard and PromQL queries.

Every sample the exposition renders is what a PromQL query of that name and those labels
returns just after the newest sample; every Grafana panel query evaluates on the store.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from metricskit import Recorder, Series, SeriesKey, open_store
from metricskit.report.grafana import panel_queries
from metricskit.server.exposition import generate
from metricskit.store import Store
from metricskit.testing.clock import ManualClock

S = 1_000_000_000
T0 = 1_700_000_000
LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
NAMES = (
    "http.request.duration_seconds",
    "http.requests.total",
    "system.cpu.usage_percent",
    "app.health.response_time_ms",
    "system.memory.available_gb",
)


@pytest.fixture
def store() -> Store:
    rng = np.random.default_rng(7)
    s = open_store("memory://")
    ts = T0 + np.sort(rng.uniform(0, 900, 400))
    for batch in np.array_split(np.arange(ts.size), 4):  # four flushes: four samples per part
        with Recorder(s, clock=ManualClock(float(ts[batch[-1]]))) as rec:
            for i in batch:
                for endpoint, status in (("/a", 200), ("/b", 500)):
                    rec.record_request(
                        endpoint, float(rng.exponential(0.3)), status, timestamp=ts[i]
                    )
    ns = (ts * S).astype(np.int64)
    s.write(
        [Series(SeriesKey.of("http.requests.total", {"job": "x"}), ns, np.arange(ns.size) * 1.0)]
    )
    for name in NAMES[2:]:
        s.write([Series(SeriesKey.of(name, {"host": "h1"}), ns, rng.uniform(1, 90, ns.size))])
    return s


def test_every_exposed_sample_is_what_a_query_returns(store: Store) -> None:
    text = generate(store).decode()
    checked = 0
    after = T0 + 901  # just after the newest sample: within the 5 minute lookback
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, line
        name, labels, value = match.groups()
        matchers = ",".join(f'{k}="{v}"' for k, v in LABEL.findall(labels or ""))
        frame = store.promql(f"{name}{{{matchers}}}", time=after)
        assert len(frame) == 1, line
        assert frame["value"][0] == pytest.approx(float(value), rel=1e-12), line
        checked += 1
    assert checked > 30


def test_every_grafana_panel_query_evaluates(store: Store) -> None:
    for name in NAMES:
        for _title, expr, _legend in panel_queries(name):
            frame = store.promql_range(expr, T0 + 300, T0 + 900, "60s")
            assert not frame.empty, expr  # the error-rate panel too: status 500 is there


def test_histogram_counters_count_every_observation(store: Store) -> None:
    count = store.promql(
        'http_request_duration_seconds_count{endpoint="/a",status="200"}', time=T0 + 901
    )
    assert count["value"].tolist() == [400.0]
    p50 = store.promql(
        "histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket[10m])))",
        time=T0 + 900,
    )
    assert 0.1 < p50["value"][0] < 0.5  # exponential(0.3): median 0.21
