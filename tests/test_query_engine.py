"""PromQL engine semantics on small hand-checked data (metricskit.query).

The random differential test against a real Prometheus is
tests/interop/test_promql_engine_prometheus.py; these pin individual rules with values
worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metricskit import Series, SeriesKey, open_store
from metricskit.errors import MetricsKitError, QueryError
from metricskit.store import Store

S = 1_000_000_000
T0 = 1_700_000_000


def _write(
    store: Store, name: str, tags: dict[str, str], times_s: list[float], values: list[float]
) -> None:
    ts = np.array([round((T0 + t) * S) for t in times_s], dtype=np.int64)
    store.write([Series(SeriesKey.of(name, tags), ts, np.array(values, dtype=float))])


@pytest.fixture
def store() -> Store:
    s = open_store("memory://")
    every_15s = [15.0 * i for i in range(41)]  # 0 .. 600 s
    for job, slope in (("api", 2.0), ("web", 1.0)):
        _write(s, "http.requests.total", {"job": job}, every_15s, [slope * t for t in every_15s])
        _write(s, "system.cpu.usage_percent", {"job": job, "core": "0"}, every_15s,
               [50.0 + (10 if job == "api" else -10)] * len(every_15s))  # fmt: skip
    return s


def _values(frame: pd.DataFrame, by: str = "job") -> dict[str, float]:
    return dict(zip(frame[by], frame["value"], strict=True))


def test_frame_is_tidy_with_series_underneath(store: Store) -> None:
    frame = store.promql("http_requests_total", time=T0 + 300)
    assert list(frame.columns) == ["timestamp", "__name__", "job", "value"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert set(frame["__name__"]) == {"http_requests_total"}
    assert _values(frame) == {"api": 600.0, "web": 300.0}
    series = frame.attrs["series"]
    assert [s.tags["job"] for s in series] == ["api", "web"]
    assert series[0].timestamps.tolist() == [(T0 + 300) * S]


def test_rate_and_aggregation(store: Store) -> None:
    frame = store.promql("sum by (job) (rate(http_requests_total[1m]))", time=T0 + 300)
    assert _values(frame) == pytest.approx({"api": 2.0, "web": 1.0})
    assert "__name__" not in frame.columns
    total = store.promql("sum(rate(http_requests_total[5m]))", time=T0 + 300)
    assert total["value"].tolist() == pytest.approx([3.0])


def test_range_query_steps_and_lookback(store: Store) -> None:
    # samples end at T0 + 600: the instant selector sees them for 5 minutes, (t - 5m, t]
    # as in Prometheus 3, so not at T0 + 900 exactly
    frame = store.promql_range("http_requests_total{job='web'}", T0 + 600, T0 + 1200, "100s")
    got = (frame["timestamp"].astype("int64") // S - T0).tolist()
    assert got == [600, 700, 800]
    assert frame["value"].tolist() == [600.0] * 3


def test_dotted_name_and_exposition_mapping(store: Store) -> None:
    by_dots = store.promql('{__name__="system.cpu.usage_percent"}', time=T0 + 60)
    by_exposed = store.promql("system_cpu_usage_percent", time=T0 + 60)
    assert by_dots.equals(by_exposed)
    assert set(by_dots["__name__"]) == {"system_cpu_usage_percent"}
    ms = open_store("memory://")
    _write(ms, "app.health.response_time_ms", {}, [0.0], [250.0])
    frame = ms.promql("app_health_response_time_seconds", time=T0 + 1)
    assert frame["value"].tolist() == [0.25]  # as /metrics exposes it: base unit


def test_offset_at_and_subquery(store: Store) -> None:
    off = store.promql('http_requests_total{job="api"} offset 2m', time=T0 + 300)
    assert off["value"].tolist() == [360.0]
    at = store.promql('http_requests_total{job="api"} @ 150', time=T0 + 300)
    assert at.empty  # @ 150 is 1970: nothing there
    at = store.promql(f'http_requests_total{{job="api"}} @ {T0 + 150}', time=T0 + 300)
    assert at["value"].tolist() == [300.0]
    sub = store.promql('max_over_time(rate(http_requests_total{job="web"}[1m])[5m:1m])', T0 + 300)
    assert sub["value"].tolist() == pytest.approx([1.0])


def test_binary_matching_and_set_operators(store: Store) -> None:
    ratio = store.promql(
        "http_requests_total / on (job) group_left sum by (job) (http_requests_total)",
        time=T0 + 300,
    )
    assert _values(ratio) == {"api": 1.0, "web": 1.0}
    high = store.promql("system_cpu_usage_percent > 55", time=T0 + 300)
    assert _values(high) == {"api": 60.0}
    assert set(high["__name__"]) == {"system_cpu_usage_percent"}  # filters keep the name
    flags = store.promql("system_cpu_usage_percent > bool 55", time=T0 + 300)
    assert _values(flags) == {"api": 1.0, "web": 0.0}
    unless = store.promql("system_cpu_usage_percent unless on (job) high_cpu", time=T0 + 300)
    assert len(unless) == 2
    both = store.promql(
        "system_cpu_usage_percent and on (job) (system_cpu_usage_percent > 55)", T0 + 300
    )
    assert _values(both) == {"api": 60.0}


def test_functions(store: Store) -> None:
    t = T0 + 300
    assert store.promql("time()", t)["value"].tolist() == [t]
    assert store.promql("scalar(sum(system_cpu_usage_percent))", t)["value"].tolist() == [100.0]
    clamp = store.promql("clamp(system_cpu_usage_percent, 45, 55)", t)
    assert sorted(clamp["value"]) == [45.0, 55.0]
    replaced = store.promql(
        'label_replace(system_cpu_usage_percent, "svc", "s-$1", "job", "(a.*)")', t
    )
    assert sorted(replaced["svc"].dropna()) == ["s-api"]
    joined = store.promql('label_join(system_cpu_usage_percent, "id", "/", "job", "core")', t)
    assert sorted(joined["id"]) == ["api/0", "web/0"]
    absent = store.promql('absent(nothing{job="x"})', t)
    assert absent["job"].tolist() == ["x"] and absent["value"].tolist() == [1.0]
    assert store.promql("absent(system_cpu_usage_percent)", t).empty
    top = store.promql("topk(1, system_cpu_usage_percent)", t)
    assert _values(top) == {"api": 60.0}
    ordered = store.promql("sort_desc(http_requests_total)", t)
    assert ordered["job"].tolist() == ["api", "web"]
    counted = store.promql('count_values("pct", system_cpu_usage_percent)', t)
    assert _values(counted, "pct") == {"40": 1.0, "60": 1.0}
    ts = store.promql('timestamp(http_requests_total{job="api"})', T0 + 301)
    assert ts["value"].tolist() == [T0 + 300]


def test_histogram_quantile() -> None:
    s = open_store("memory://")
    for le, count in (("0.1", 10.0), ("0.5", 60.0), ("1", 90.0), ("+Inf", 100.0)):
        _write(s, "rpc.duration_seconds_bucket", {"le": le}, [0.0], [count])
    frame = s.promql("histogram_quantile(0.5, rpc_duration_seconds_bucket)", time=T0 + 10)
    # rank 50 falls in (0.1, 0.5]: 0.1 + 0.4 * (50 - 10) / 50
    assert frame["value"].tolist() == pytest.approx([0.42])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("mad_over_time(x[5m])", ("mad_over_time()", "position 0")),
        ("sum(x) + sort_by_label(x, 'a')", ("sort_by_label()", "position 9")),
        ('x{a="1" or b="2"}', ("'or' inside label matchers",)),
        ("histogram_count(x)", ("histogram_count()",)),
        ("limitk(2, x)", ("aggregation limitk",)),
        ("a + on (x) fill_left(1) b", ("fill modifier", "position 11")),
    ],
)
def test_unsupported_constructs_name_themselves(expr: str, names: tuple[str, ...]) -> None:
    s = open_store("memory://")
    with pytest.raises(QueryError) as err:
        s.promql(expr, time=T0)
    for part in names:
        assert part in str(err.value)
    assert isinstance(err.value, MetricsKitError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("sum(", "cannot parse"),
        ("http_requests_total[5m]", "range vector"),
        ('{job="api"} + on () {job="web"}', "many-to-many|multiple matches"),
        ('{job=~".*"}', "non-empty matcher"),
    ],
)
def test_bad_queries_are_query_errors(store: Store, expr: str, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        store.promql(expr, time=T0 + 300)


def test_range_query_limits(store: Store) -> None:
    with pytest.raises(QueryError, match="at most"):
        store.promql_range("up", T0, T0 + 100_000, "1s")
    with pytest.raises(QueryError, match="before start"):
        store.promql_range("up", T0 + 10, T0, "1s")


def test_nan_value_is_a_sample_and_absence_is_not() -> None:
    s = open_store("memory://")
    _write(s, "g", {}, [0.0], [math.nan])
    frame = s.promql("g", time=T0 + 1)
    assert len(frame) == 1 and math.isnan(frame["value"][0])
    assert s.promql("g", time=T0 + 400).empty  # beyond the 5 m lookback


def test_rules_the_differential_test_found() -> None:
    """Each was a difference from Prometheus 2.42 in an early run of the random test."""
    s = open_store("memory://")
    _write(s, "x", {"k": "a"}, [0.0], [math.nan])
    _write(s, "x", {"k": "b"}, [0.0], [1.0])
    _write(s, "x", {"k": "c"}, [0.0], [2.0])
    _write(s, "y", {"k": "a"}, [0.0, 400.0], [5.0, 7.0])
    _write(s, "y", {"k": "b"}, [0.0], [3.0])
    t = T0 + 10
    # Go's sort puts NaN first: the median of [NaN, 1, 2] is 1
    assert s.promql("quantile(0.5, x)", t)["value"].tolist() == [1.0]
    # a row absent at one time does not make min NaN there
    ranged = s.promql_range("min(y)", T0 + 100, T0 + 400, "300s")
    assert ranged["value"].tolist() == [3.0, 7.0]
    # atan2 keeps the metric name (Prometheus drops it for + - * / % ^ only)
    assert set(s.promql("y atan2 1", t)["__name__"]) == {"y"}
    # stddev of a single sample is 0 even when it is NaN
    assert s.promql('stddev(x{k="a"})', t)["value"].tolist() == [0.0]
    # timestamps are Prometheus' milliseconds / 1000: no ns rounding in the last bits
    age = s.promql('time() - timestamp(y{k="b"})', T0 + 10.5)
    assert age["value"].tolist() == [10.5]


def test_spread_of_equal_values_is_exactly_zero() -> None:
    """Found by the differential test: ln(stddev_over_time(...)) was -32.6, not -Inf."""
    s = open_store("memory://")
    for k in ("a", "b", "c"):
        _write(s, "x", {"k": k}, [0.0, 10.0, 20.0], [20.013] * 3)
    t = T0 + 30
    for expr in ("stddev_over_time(x[1m])", "stdvar_over_time(x[1m])", "stddev(x)", "stdvar(x)"):
        assert set(s.promql(expr, t)["value"]) == {0.0}, expr


def test_spread_of_large_values_is_exact_where_prometheus_drifts() -> None:
    """docs/promql.md: two-pass stddev/stdvar, exact on values near 1.7e9 that differ by tens
    (``x + time()``), where Prometheus' running form agrees only to ~1e-8."""
    from fractions import Fraction

    rng = np.random.default_rng(7)
    values = [round(1.7e9 + float(v), 3) for v in rng.normal(0, 10, 6)]
    mean = sum(map(Fraction, values)) / len(values)
    exact = float(sum((Fraction(v) - mean) ** 2 for v in values) / len(values))
    s = open_store("memory://")
    for i, v in enumerate(values):
        _write(s, "x", {"k": str(i)}, [0.0], [v])
    _write(s, "y", {}, [float(i) for i in range(len(values))], values)
    t = T0 + 10
    for expr in ("stdvar(x)", "stdvar_over_time(y[1m])"):
        assert s.promql(expr, t)["value"].iloc[0] == pytest.approx(exact, rel=1e-12), expr
    assert s.promql("stddev(x)", t)["value"].iloc[0] == pytest.approx(math.sqrt(exact), rel=1e-12)


def test_sum_of_a_lone_negative_zero_keeps_its_sign() -> None:
    """Prometheus' sum starts from the first value, not from 0: sum(-0) is -0."""
    s = open_store("memory://")
    _write(s, "dg", {"job": "a", "inst": "1"}, [0.0], [-0.5])
    _write(s, "dg", {"job": "b", "inst": "1"}, [0.0], [-0.5])
    _write(s, "dg", {"job": "b", "inst": "2"}, [0.0], [0.0])
    t = T0 + 10

    def signs(expr: str) -> dict[str, float]:
        frame = s.promql(expr, t)
        return {j: math.copysign(1.0, v) for j, v in zip(frame["job"], frame["value"], strict=True)}

    # ceil(-0.5) is -0; -0 + 0 is 0
    assert signs('sum by (job) (ceil(dg{inst="1"}))') == {"a": -1.0, "b": -1.0}
    assert signs("sum by (job) (ceil(dg))") == {"a": -1.0, "b": 1.0}
    assert signs("avg by (job) (ceil(dg))") == {"a": -1.0, "b": 1.0}


def test_sum_and_avg_over_time_of_negative_zeros_are_positive_zero() -> None:
    """Prometheus' sum_over_time and avg_over_time start from +0 (Kahan): -0 + -0 ... is +0.

    Checked against Prometheus 2.42; max/min/last keep the sample's -0.
    """
    s = open_store("memory://")
    _write(s, "negz", {}, [0.0, 10.0, 20.0], [-0.0] * 3)
    t = T0 + 25
    for expr, sign in (
        ("sum_over_time(negz[1m])", 1.0),
        ("avg_over_time(negz[1m])", 1.0),
        ("max_over_time(negz[1m])", -1.0),
        ("last_over_time(negz[1m])", -1.0),
    ):
        (value,) = s.promql(expr, t)["value"]
        assert value == 0.0 and math.copysign(1.0, value) == sign, expr


def _histogram_store() -> Store:
    """Buckets over 20 minutes; the 0.5 bucket is absent for a while, le="1" comes twice."""
    s = open_store("memory://")
    rng = np.random.default_rng(7)
    times = [60.0 * i for i in range(20)]
    increments = rng.poisson(3.0, (20, 4)).astype(float)
    cumulative = np.cumsum(np.cumsum(increments, axis=1), axis=0)
    for b, le in enumerate(("0.1", "0.5", "1", "+Inf")):
        keep = [i for i in range(20) if le != "0.5" or not 6 <= i < 14]  # > 5 m: absent
        _write(s, "rpc.duration_seconds_bucket", {"le": le, "job": "a"},
               [times[i] for i in keep], [cumulative[i, b] for i in keep])  # fmt: skip
    _write(s, "rpc.duration_seconds_bucket", {"le": "1.0", "job": "a"}, times, [0.0] * 20)
    return s


@pytest.mark.parametrize("q", ["0.5", "0.7", "0", "1", "0.25", "-1", "2", "NaN"])
def test_histogram_quantile_over_a_range_equals_each_instant(q: str) -> None:
    """The vectorised range path answers what one instant query per step answers."""
    s = _histogram_store()
    expr = f"histogram_quantile({q}, rpc_duration_seconds_bucket)"
    frame = s.promql_range(expr, T0, T0 + 1140, "60s")
    assert len(frame) == 20
    for t, got in zip(frame["timestamp"], frame["value"], strict=True):
        (want,) = s.promql(expr, t.timestamp())["value"]
        assert np.array_equal([got], [want], equal_nan=True), (t, got, want)


def test_histogram_quantile_zero_with_an_empty_first_bucket_is_nan() -> None:
    """Prometheus divides 0 by 0 there (NaN); the per-time code raised ZeroDivisionError."""
    s = open_store("memory://")
    for le, count in (("0.1", 0.0), ("1", 5.0), ("+Inf", 8.0)):
        _write(s, "h_bucket", {"le": le}, [0.0], [count])
    assert math.isnan(s.promql("histogram_quantile(0, h_bucket)", T0 + 10)["value"][0])
    assert s.promql("histogram_quantile(0.5, h_bucket)", T0 + 10)["value"].tolist() == [
        pytest.approx(0.82)
    ]
