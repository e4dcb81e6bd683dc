import numpy as np
import pandas as pd
import pytest

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.report.trends import anomalies, fit_line, linear_trends, period_change

T0 = 1_795_046_400
HOUR = 3600


def put(
    store: mk.Store, name: str, tags: dict[str, str], ts_s: np.ndarray, values: np.ndarray
) -> None:
    ts = (np.asarray(ts_s) * 10**9).astype(np.int64)
    store.write([Series(SeriesKey.of(name, tags), ts, np.asarray(values, dtype=float))])


def test_fit_line_matches_polyfit() -> None:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.integers(0, 10**13, 200)).astype(np.int64)
    values = 3.0 + 2e-9 * ts + rng.normal(size=200)
    slope, at = fit_line(ts, values, 10**13)
    expected = np.polyfit((ts - 10**13) / 1e9, values, 1)
    assert slope == pytest.approx(expected[0], rel=1e-9)
    assert at == pytest.approx(expected[1], rel=1e-9)
    assert np.isnan(fit_line(ts[:1], values[:1], 0)[0])


def test_disk_fill_forecast() -> None:
    store = mk.open_store("memory://")
    t = T0 + np.arange(0, 6 * HOUR, 60)
    put(store, "system.disk.usage_percent", {"host": "a"}, t, 50 + (t - T0) / HOUR * 2.0)
    put(store, "system.disk.usage_percent", {"host": "b"}, t, np.full(t.size, 40.0))
    frame = linear_trends(store, "system.disk.usage_percent", "6h", horizon="24h", threshold=95)
    a = frame[frame["host"] == "a"].iloc[0]
    last_t = int(t[-1])
    assert a["slope_per_hour"] == pytest.approx(2.0)
    assert a["predicted"] == pytest.approx(a["last_value"] + 48.0)
    expected_cross = last_t + (95 - a["last_value"]) / 2.0 * HOUR
    assert a["crossing_at"] == pd.Timestamp(expected_cross, unit="s", tz="UTC")
    assert a["hours_to_threshold"] == pytest.approx((95 - a["last_value"]) / 2.0)
    b = frame[frame["host"] == "b"].iloc[0]
    assert b["slope_per_hour"] == 0.0 and pd.isna(b["crossing_at"])


def test_window_excludes_its_left_edge() -> None:
    store = mk.open_store("memory://")
    put(store, "m.x", {}, np.array([T0, T0 + 60, T0 + 120]), np.array([100.0, 1.0, 2.0]))
    frame = linear_trends(store, "m.x", window=120, now=T0 + 120)
    assert frame.iloc[0]["samples"] == 2  # (now - 120 s, now] leaves out the sample at T0


def test_day_over_day() -> None:
    store = mk.open_store("memory://")
    t = T0 + np.arange(0, 2 * 86400, 600)
    values = np.where(t >= T0 + 86400, 30.0, 20.0)
    put(store, "business.users.active_sessions", {}, t, values)
    frame = period_change(store, "business.users.active_sessions", period="1d", window="1h")
    row = frame.iloc[0]
    assert (row["current"], row["previous"], row["change"]) == (30.0, 20.0, 10.0)
    assert row["change_percent"] == pytest.approx(50.0)
    with pytest.raises(mk.QueryError):
        period_change(store, "business.users.active_sessions", stat="p99")


def test_anomaly_spike_is_flagged_and_nothing_else() -> None:
    store = mk.open_store("memory://")
    rng = np.random.default_rng(5)
    t = T0 + np.arange(0, 3 * HOUR, 30)
    values = 100 + rng.normal(0, 1, t.size)
    values[200] = 130
    put(store, "app.health.response_time_ms", {"check": "api"}, t, values)
    frame = anomalies(store, "app.health.response_time_ms", "1h", z=4)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["timestamp"] == pd.Timestamp(int(t[200]), unit="s", tz="UTC")
    assert row["value"] == 130 and row["zscore"] > 4 and row["check"] == "api"


def test_empty_results_have_columns() -> None:
    store = mk.open_store("memory://")
    assert list(linear_trends(store, "no.such.metric").columns)[:2] == ["name", "samples"]
    assert len(anomalies(store, "no.such.metric")) == 0


def test_crossing_out_of_sight_is_nat_not_an_error() -> None:
    store = mk.open_store("memory://")
    t = T0 + np.arange(0, HOUR, 60)
    put(store, "system.disk.usage_percent", {}, t, 10 + (t - T0) * 1e-12)  # fills in ~10^5 years
    row = linear_trends(store, "system.disk.usage_percent", "1h", threshold=100).iloc[0]
    assert row["slope_per_hour"] > 0
    assert pd.isna(row["crossing_at"]) and pd.isna(row["hours_to_threshold"])


def test_too_little_history_forecasts_nothing() -> None:
    """A minute of a rising disk is not "full in 2 h": span and points are required."""
    store = mk.open_store("memory://")
    t = T0 + np.arange(0, 61, 15)  # five samples over one minute, +1 % a minute
    put(store, "system.disk.usage_percent", {}, t, 90 + (t - T0) / 60.0)
    loose = linear_trends(store, "system.disk.usage_percent", "6h", threshold=100)
    assert loose.iloc[0]["enough_data"] and loose.iloc[0]["hours_to_threshold"] > 0
    strict = linear_trends(
        store, "system.disk.usage_percent", "6h", threshold=100, min_samples=3, min_span="1h"
    ).iloc[0]
    assert not strict["enough_data"]
    assert strict["samples"] == 5 and strict["span_hours"] == pytest.approx(1 / 60)
    assert np.isnan(strict["slope_per_hour"]) and np.isnan(strict["predicted"])
    assert pd.isna(strict["crossing_at"]) and strict["hours_to_threshold"] is None
    few = linear_trends(
        store, "system.disk.usage_percent", "6h", threshold=100, min_samples=6
    ).iloc[0]
    assert not few["enough_data"]
