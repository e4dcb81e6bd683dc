"""metricskit's range functions against a real Prometheus (Debian's 2.42) on the same data.

The samples are backfilled with ``promtool tsdb create-blocks-from openmetrics``, then
``/api/v1/query_range`` answers quantile_over_time, avg_over_time, rate and increase;
metricskit must agree to 1e-9. Prometheus 2.42 selects ``[t - window, t]`` where we (and
Prometheus 3) select ``(t - window, t]``, so the samples sit 3 s off every window edge;
one test pins the documented difference on a sample exactly at ``t - window``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests

from metricskit.query.range_functions import eval_times, over_time, range_function
from tests.interop.prom import backfilled_prometheus

pytestmark = pytest.mark.services

S = 1_000_000_000
T0 = 1_700_000_040  # a multiple of 60 s, so evaluation times are minute-aligned
N = 400  # one sample every 10 s, 3 s after each 10 s mark
EDGE_T = T0 + 1800  # an extra gauge has a sample exactly at EDGE_T - 60 s


def dataset() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    ts = (T0 + 3 + 10 * np.arange(N)).astype(np.int64) * S
    gauge = np.round(rng.normal(50, 12, N), 2)
    counter = np.cumsum(rng.integers(0, 40, N)).astype(np.float64) + 10_000
    counter[200:] -= counter[199] - 5  # a restart: drops to a small value, then climbs
    edge_ts = np.array([EDGE_T - 60, EDGE_T - 30, EDGE_T - 10], dtype=np.int64) * S
    return {
        "interop_gauge": (ts, gauge),
        "interop_requests_total": (ts, counter),
        "interop_edge": (edge_ts, np.array([1.0, 2.0, 3.0])),
    }


def openmetrics(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    lines = []
    for name, (ts, vals) in data.items():
        family = name.removesuffix("_total")
        lines.append(f"# TYPE {family} {'counter' if name.endswith('_total') else 'gauge'}")
        lines += [f"{name} {v!r} {t // S}" for t, v in zip(ts.tolist(), vals.tolist(), strict=True)]
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backfilled_prometheus(
        tmp_path_factory.mktemp("prometheus"), openmetrics(dataset())
    ) as url:
        yield url


def query_range(url: str, promql: str, start: int, end: int, step: int) -> dict[int, float]:
    resp = requests.get(
        f"{url}/api/v1/query_range",
        params={"query": promql, "start": start, "end": end, "step": step},
        timeout=30,
    )
    resp.raise_for_status()
    result = resp.json()["data"]["result"]
    assert len(result) == 1, result
    return {int(float(t)): float(v) for t, v in result[0]["values"]}


START, END, STEP = T0 + 600, T0 + 3600, 60


@pytest.mark.parametrize(
    ("promql", "name", "kind", "arg", "window"),
    [
        ("quantile_over_time(0.95, interop_gauge[2m])", "interop_gauge", "over", 0.95, 120),
        ("quantile_over_time(0.5, interop_gauge[1m])", "interop_gauge", "over", 0.5, 60),
        ("avg_over_time(interop_gauge[5m])", "interop_gauge", "avg", None, 300),
        ("rate(interop_requests_total[5m])", "interop_requests_total", "rate", None, 300),
        ("increase(interop_requests_total[2m])", "interop_requests_total", "increase", None, 120),
        ("rate(interop_requests_total[1m])", "interop_requests_total", "rate", None, 60),
    ],
)
def test_range_functions_equal_prometheus(prometheus, promql, name, kind, arg, window):
    ts, vals = dataset()[name]
    want = query_range(prometheus, promql, START, END, STEP)
    times = eval_times(START * S, END * S, STEP * S)
    if kind == "over":
        got = over_time("quantile", ts, vals, window * S, times, q=arg)
    elif kind == "avg":
        got = over_time("avg", ts, vals, window * S, times)
    else:
        got = range_function(kind, ts, vals, window * S, times)
    mine = {
        int(t // S): v for t, v in zip(times.tolist(), got.tolist(), strict=True) if not np.isnan(v)
    }
    assert mine.keys() == want.keys()
    for t, value in want.items():
        assert mine[t] == pytest.approx(value, rel=1e-9, abs=1e-9), (promql, t)


def test_prometheus_2_closes_the_window_start_we_do_not(prometheus):
    ts, vals = dataset()["interop_edge"]
    want = query_range(prometheus, "count_over_time(interop_edge[1m])", EDGE_T, EDGE_T, 60)
    ours = over_time("count", ts, vals, 60 * S, np.array([EDGE_T * S]))[0]
    # Prometheus 2.42 selects [t - 1m, t]: 3 samples; (t - 1m, t] leaves the first out
    assert want[EDGE_T] == 3
    assert ours == 2
