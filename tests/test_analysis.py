"""Store-level analysis frames, checked against pandas and per-series kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metricskit.errors import InvalidDurationError, QueryError
from metricskit.model import Series, SeriesKey
from metricskit.query import range_functions as promql
from metricskit.query.analysis import aggregate_frame, over_time_frame, parse_stat, rate_frame
from metricskit.store import open_store

S = 1_000_000_000
T0 = 1_700_000_000


def latency_series() -> list[Series]:
    rng = np.random.default_rng(3)
    out = []
    for endpoint, host in [("/a", "h1"), ("/a", "h2"), ("/b", "h1")]:
        ts = (T0 + np.sort(rng.choice(3600, 400, replace=False))) * S
        vals = rng.gamma(2.0, 50.0, ts.size)
        vals[::17] = np.nan
        key = SeriesKey.of("http.request.latency_ms", {"endpoint": endpoint, "host": host})
        out.append(Series(key, ts.astype(np.int64), vals))
    return out


def test_parse_stat_names():
    assert parse_stat("p99.9") == ("quantile", pytest.approx(0.999))
    assert parse_stat("median") == ("quantile", 0.5)
    assert parse_stat("p100") == ("quantile", 1.0)
    assert parse_stat("avg") == ("mean", None)
    for bad in ["p101", "p-1", "mode", "P95", ""]:
        with pytest.raises(QueryError):
            parse_stat(bad)


def test_aggregate_frame_by_endpoint_equals_pandas_groupby_resample():
    series = latency_series()
    got = aggregate_frame(
        series, "5m", ["count", "mean", "p95", "median", "stddev", "max"], by=["endpoint"]
    )
    assert list(got.columns) == [
        "timestamp",
        "endpoint",
        "count",
        "mean",
        "p95",
        "median",
        "stddev",
        "max",
    ]
    assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert got["count"].dtype == np.int64
    long = pd.concat(
        pd.DataFrame(
            {"t": pd.to_datetime(s.timestamps, utc=True), "v": s.values, "e": s.tags["endpoint"]}
        )
        for s in series
    )
    for endpoint, part in long.groupby("e"):
        r = part.set_index("t")["v"].sort_index().resample("5min")
        mine = got[got["endpoint"] == endpoint].reset_index(drop=True)
        assert mine["timestamp"].tolist() == r.count().index.tolist()
        np.testing.assert_array_equal(mine["count"], r.count().to_numpy())
        for col, ref in [
            ("mean", r.mean()),
            ("p95", r.quantile(0.95)),
            ("median", r.median()),
            ("stddev", r.std()),
            ("max", r.max()),
        ]:
            np.testing.assert_allclose(mine[col], ref.to_numpy(), rtol=1e-9, equal_nan=True)


def test_aggregate_frame_range_keeps_empty_windows_and_rejects_unknown_stats():
    series = latency_series()[:1]
    start, end = (T0 - 600) * S, (T0 + 7200) * S
    got = aggregate_frame(series, "10m", ["count", "sum"], start, end)
    # T0 - 600 s is 22:03:20 (window 22:00) and end - 1 ns falls in 00:10: 14 windows
    assert len(got) == 14
    assert (got["count"] == 0).sum() >= 6 and got.loc[got["count"] == 0, "sum"].isna().all()
    with pytest.raises(QueryError):
        aggregate_frame(series, "1m", ["mean", "p95x"])
    with pytest.raises(InvalidDurationError):
        aggregate_frame(series, "5 minutes")
    empty = aggregate_frame([], "1m", ["count", "p95"], by=["endpoint"])
    assert list(empty.columns) == ["timestamp", "endpoint", "count", "p95"] and len(empty) == 0


def counters() -> list[Series]:
    ts = (T0 + np.arange(0, 3600, 15)) * S
    out = []
    for i, group in enumerate(["a", "a", "b"]):
        inc = np.full(ts.size, 2.0 + i)
        vals = np.cumsum(inc)
        vals[100:] -= vals[99]  # a restart
        key = SeriesKey.of("app.requests_total", {"group": group, "instance": str(i)})
        out.append(Series(key, ts.astype(np.int64), vals))
    return out


def test_rate_frame_sum_by_equals_sum_of_per_series_rates():
    series = counters()
    start, end = (T0 + 600) * S, (T0 + 3000) * S
    per = rate_frame(series, "5m", "1m", start, end)
    summed = rate_frame(series, "5m", "1m", start, end, by=["group"])
    times = promql.eval_times(start, end, 60 * S)
    assert list(summed.columns) == ["timestamp", "group", "value"]
    for group, members in [("a", series[:2]), ("b", series[2:])]:
        want = sum(
            promql.range_function("rate", s.timestamps, s.values, 300 * S, times) for s in members
        )
        got = summed[summed["group"] == group]["value"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert set(per["instance"]) == {"0", "1", "2"} and len(per) == 3 * len(times)
    # steady 2/15 per second per instance 0 despite the restart
    inst0 = per[per["instance"] == "0"]["value"].to_numpy()
    np.testing.assert_allclose(inst0, 2 / 15, rtol=1e-12)


def test_over_time_frame_per_series_and_pooled():
    series = latency_series()
    start, end = (T0 + 300) * S, (T0 + 3300) * S
    per = over_time_frame(series, "p95", "5m", "1m", start, end)
    times = promql.eval_times(start, end, 60 * S)
    s0 = per[(per["endpoint"] == "/a") & (per["host"] == "h1")]
    want = promql.over_time(
        "quantile", series[0].timestamps, series[0].values, 300 * S, times, q=0.95
    )
    np.testing.assert_allclose(s0["value"], want[~np.isnan(want)], rtol=1e-12)
    pooled = over_time_frame(series, "max", "5m", "1m", start, end, by=["endpoint"])
    a = pooled[pooled["endpoint"] == "/a"]["value"].to_numpy()
    per_series_max = [
        promql.over_time("max", s.timestamps, s.values, 300 * S, times) for s in series[:2]
    ]
    np.testing.assert_allclose(a, np.fmax(*per_series_max), rtol=0)
    with pytest.raises(QueryError):
        over_time_frame(series, "quantile", "5m", "1m")


def test_store_methods_query_the_backend():
    with open_store("memory://") as store:
        store.write(counters() + latency_series())
        rates = store.rate("app.requests_total", "5m", "1m", T0 + 600, T0 + 1200, by=["group"])
        assert len(rates) == 2 * 11
        inc = store.increase(
            "app.requests_total", "5m", "1m", T0 + 600, T0 + 1200, tags={"instance": "0"}
        )
        np.testing.assert_allclose(inc["value"], 2 / 15 * 300, rtol=1e-12)
        frame = store.aggregate(
            "http.request.latency_ms", "10m", ["count", "p99"], tags={"endpoint": "/a"}, by=["host"]
        )
        assert set(frame["host"]) == {"h1", "h2"}
        assert frame["count"].sum() == sum(
            int(np.count_nonzero(~np.isnan(s.values))) for s in latency_series()[:2]
        )
        ot = store.over_time("http.request.latency_ms", "avg", "5m", "5m", T0 + 600, T0 + 900)
        assert len(ot) == 3 * 2
