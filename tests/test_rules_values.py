"""The rule engine's values agree with Prometheus' expressions (issue 11, items 7-9).

Each series' window stands alone (a reset correction never leaks from one series or one
earlier sample into another), an empty window is no data (not a count of 0), and a NaN
result is a value compared as Prometheus compares it (only ``!=`` is true), not no data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.rules_model import AlertRule
from metricskit.store import Store

METRIC = "app.test.value"
S = 10**9


def _store(series: dict[str, list[tuple[float, float]]]) -> Store:
    store = open_store("memory://")
    for host, samples in series.items():
        ts = np.array([round(t * S) for t, _ in samples], dtype=np.int64)
        vs = np.array([v for _, v in samples], dtype=np.float64)
        store.write([Series(SeriesKey.of(METRIC, {"host": host}), ts, vs)])
    return store


def _firing(store: Store, *rules: AlertRule, at: float) -> dict[str, set[str]]:
    engine = RuleEngine(list(rules), store)
    engine.evaluate(now=at)
    out: dict[str, set[str]] = {r.name: set() for r in rules}
    for a in engine.active_alerts():
        if a.state is AlertState.FIRING:
            out[a.rule].add(a.tags["host"])
    return out


def _values(store: Store, rule: AlertRule, at: float) -> dict[str, float]:
    engine = RuleEngine([rule], store)
    engine.evaluate(now=at)
    return {a.tags["host"]: a.value for a in engine.active_alerts()}


CALM = [(30.0, 0.2), (40.0, 0.3), (50.0, 0.05), (60.0, 0.15)]


@pytest.mark.parametrize(
    "other",
    [
        [(30.0, 1e15), (40.0, 3e15), (50.0, 2e15)],  # a big counter, reset
        [(30.0, 1.0), (40.0, math.inf), (50.0, 0.0)],  # an +Inf
    ],
)
def test_another_series_does_not_change_a_series_increase(other) -> None:
    rule = AlertRule.create(
        "r", metric=METRIC, stat="increase", window="40s", operator="gte", threshold=0
    )
    alone = _values(_store({"b": CALM}), rule, at=65)
    # the engine lays "a" before "b" in one array: a's drops came before b's
    together = _values(_store({"a": other, "b": CALM}), rule, at=65)
    assert alone["b"] == pytest.approx(0.25 * 40 / 30, rel=1e-12)
    assert together["b"] == alone["b"]


def test_a_huge_value_before_the_window_does_not_change_increase() -> None:
    rule = AlertRule.create(
        "r", metric=METRIC, stat="increase", window="40s", operator="gte", threshold=0
    )
    store = _store({"b": [(0.0, 1e15), (10.0, 0.0), (20.0, 0.1), *CALM]})
    # a second rule with a longer window makes the engine read from 0 s on
    wide = AlertRule.create("w", metric=METRIC, stat="max", window="2m", operator="gt", threshold=0)
    engine = RuleEngine([rule, wide], store)
    engine.evaluate(now=65)
    (value,) = [a.value for a in engine.active_alerts() if a.rule == "r"]
    assert value == pytest.approx(0.25 * 40 / 30, rel=1e-12)


def test_count_of_an_empty_window_is_no_data_not_zero() -> None:
    # "a": only NaN in the last 30 s; "b": nothing in the last 30 s. Prometheus'
    # count_over_time(m[30s]) <= 3 has no series for either (NaN samples are dropped, the
    # documented NaN policy); a second, wider rule makes the engine read both series.
    data = {
        "a": [(10.0, 1.0), (50.0, math.nan), (55.0, math.nan)],
        "b": [(10.0, 1.0), (20.0, 2.0)],
        "c": [(50.0, 1.0)],
    }
    count = AlertRule.create(
        "count",
        metric=METRIC,
        stat="count",
        window="30s",
        operator="lte",
        threshold=3,
        no_data="ok",
    )
    wide = AlertRule.create("w", metric=METRIC, stat="max", window="2m", operator="gt", threshold=0)
    assert _firing(_store(data), count, wide, at=60)["count"] == {"c"}
    assert _firing(_store(data), count, at=60)["count"] == {"c"}


def test_ne_with_a_nan_sample_fires_as_in_prometheus_under_ok() -> None:
    data = {"a": [(10.0, math.nan)], "b": [(10.0, 5.0)], "c": [(10.0, 7.0)]}
    ne = AlertRule.create("ne", metric=METRIC, operator="ne", threshold=5, no_data="ok")
    gt = AlertRule.create("gt", metric=METRIC, operator="gt", threshold=1, no_data="ok")
    firing = _firing(_store(data), ne, gt, at=30)
    assert firing["ne"] == {"a", "c"}  # NaN != 5 is true in PromQL
    assert firing["gt"] == {"b", "c"}  # NaN > 1 is false
    # keep (the default) leaves a NaN to the no-data policy: nothing changes for "a"
    keep = AlertRule.create("keep", metric=METRIC, operator="ne", threshold=5)
    assert _firing(_store(data), keep, at=30)["keep"] == {"c"}


def test_a_nan_mean_is_a_value_not_no_data() -> None:
    # avg_over_time of +Inf and -Inf is NaN in Prometheus: a sample, so `!= 0` holds
    store = _store({"a": [(10.0, math.inf), (20.0, -math.inf)], "b": [(10.0, 1.0)]})
    rule = AlertRule.create(
        "r", metric=METRIC, stat="avg", window="1m", operator="ne", threshold=0, no_data="ok"
    )
    assert _firing(store, rule, at=30)["r"] == {"a", "b"}
