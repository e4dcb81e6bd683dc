"""metricskit.query.range_functions: many series at once equal one series at a time, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from metricskit.query import aggregate
from metricskit.query import range_functions as promql

S = 1_000_000_000


def _columns() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    grid = np.arange(0, 3000, 10, dtype=np.int64) * S
    cols = []
    for i in range(12):  # counters on one grid: the shared-grid path
        cols.append((grid, np.cumsum(rng.exponential(5.0, grid.size)) + i * 1e6))
    reset = np.cumsum(rng.exponential(5.0, grid.size))
    reset[100:] -= reset[99] + 1  # a counter reset
    cols.append((grid, reset))
    with_nan = cols[0][1].copy()
    with_nan[[5, 50, 51]] = np.nan  # NaN samples: windows of their own
    cols.append((grid, with_nan))
    cols.append((grid.copy(), rng.normal(0, 1, grid.size)))  # a gauge: an equal copy of the grid
    jitter = np.sort(rng.choice(np.arange(0, 3000 * S, S // 2), 250, replace=False))
    cols.append((jitter, np.cumsum(rng.exponential(5.0, 250))))  # its own grid
    cols.append((grid[:0], np.empty(0)))  # empty
    cols.append((grid[::3], cols[1][1][::3]))  # a sparser grid
    return cols


@pytest.mark.parametrize("fn", promql.RANGE_FUNCTIONS)
@pytest.mark.parametrize(("window_s", "step_s"), [(300, 60), (60, 60), (45, 25), (25, 60), (7, 60)])
def test_many_equals_one_at_a_time(fn: str, window_s: int, step_s: int) -> None:
    cols = _columns()
    times = np.arange(-600, 3700, step_s, dtype=np.int64) * S
    many = promql.range_function_many(fn, cols, window_s * S, times)
    assert many.shape == (len(cols), times.size)
    for i, (ts, vals) in enumerate(cols):
        one = promql.range_function(fn, ts, vals, window_s * S, times)
        np.testing.assert_array_equal(many[i], one, err_msg=f"series {i}")
    assert np.isfinite(many[:12]).any() == (window_s > 10)


def test_rate_formula_on_a_known_counter() -> None:
    # 1 per second sampled every 10 s: rate 1 wherever the window holds 2+ samples
    ts = np.arange(0, 600, 10, dtype=np.int64) * S
    vals = ts / S + 100.0
    times = np.array([300, 600], dtype=np.int64) * S
    got = promql.range_function_many("rate", [(ts, vals), (ts, 2 * vals)], 300 * S, times)
    np.testing.assert_allclose(got, [[1.0, 1.0], [2.0, 2.0]], rtol=1e-12)


def test_names_still_import_from_aggregate() -> None:
    from metricskit.query.range_functions import (
        extrapolated_rate,
        range_function_many,
        sliding_windows,
    )

    assert range_function_many is promql.range_function_many
    assert extrapolated_rate is promql.extrapolated_rate
    assert sliding_windows is promql.sliding_windows
    with pytest.raises(AttributeError):
        aggregate.no_such_name  # noqa: B018


# issue 11, item 7: each series' window stands alone. The counter-reset correction must
# not depend on samples before the window (a huge value, an +Inf) nor on other series.
_BIG_THEN_SMALL = (
    np.array([0, 10, 20, 30, 40, 50, 60], dtype=np.int64) * S,
    np.array([1e15, 0.0, 0.1, 0.2, 0.3, 0.05, 0.15]),
)


@pytest.mark.parametrize("start_s", [5, 65])
def test_increase_ignores_a_huge_value_before_the_window(start_s: int) -> None:
    ts, vals = _BIG_THEN_SMALL
    times = np.arange(start_s, 66, 10, dtype=np.int64) * S
    got = promql.range_function("increase", ts, vals, 40 * S, times)[-1]
    # window (25 s, 65 s]: 0.2, 0.3, 0.05, 0.15. Prometheus: 0.15 - 0.2 + 0.3 (before the
    # drop) = 0.25 over 30 s of samples, extended by 5 s at each end: 0.333333...
    assert got == pytest.approx(0.25 * 40 / 30, rel=1e-12)


def test_rate_ignores_an_inf_before_the_window() -> None:
    ts = np.arange(0, 70, 10, dtype=np.int64) * S
    vals = np.array([1.0, np.inf, 0.0, 1.0, 2.0, 3.0, 4.0])
    got = promql.range_function("rate", ts, vals, 40 * S, np.array([65 * S]))[0]
    assert got == pytest.approx(0.1, rel=1e-12)


def test_many_series_do_not_leak_resets_into_each_other() -> None:
    ts = np.arange(0, 70, 10, dtype=np.int64) * S
    calm = np.arange(7, dtype=np.float64)
    huge = np.array([1e15, np.nan, 1e15, 2e15, 1e15, 3e15, np.inf])
    with_nan = calm.copy()
    with_nan[0] = np.nan  # NaN: the general path, series laid end to end
    cols = [(ts, huge), (ts, calm), (ts, with_nan), (ts[1:], calm[1:])]
    times = np.array([35, 65], dtype=np.int64) * S
    many = promql.range_function_many("increase", cols, 40 * S, times)
    alone = promql.range_function("increase", ts, calm, 40 * S, times)
    np.testing.assert_array_equal(many[1], alone)
    later = promql.range_function("increase", ts[1:], calm[1:], 40 * S, times)
    np.testing.assert_array_equal(many[2], later)
    np.testing.assert_array_equal(many[3], later)


# issue 11, item 9: an Inf or NaN result is a value (a sample in Prometheus), not "no data"
def _frame_series() -> list:
    from metricskit import Series, SeriesKey

    ts = np.array([10, 20], dtype=np.int64) * S
    return [
        Series(SeriesKey.of("m", {"h": "inf"}), ts, np.array([1.0, np.inf])),
        Series(SeriesKey.of("m", {"h": "both"}), ts, np.array([np.inf, -np.inf])),
        Series(SeriesKey.of("m", {"h": "nan"}), ts, np.array([np.nan, np.nan])),
    ]


def test_quantile_of_one_and_inf_is_inf_as_in_prometheus() -> None:
    ts = np.array([10, 20], dtype=np.int64) * S
    got = promql.over_time("quantile", ts, [1.0, np.inf], 60 * S, [30 * S], q=0.95)
    assert got[0] == np.inf  # 1 * 0.05 + Inf * 0.95
    # Prometheus' weighted sum at a weight of 0 multiplies Inf by 0: NaN there too
    assert np.isnan(promql.over_time("quantile", ts, [1.0, np.inf], 60 * S, [30 * S], q=1)[0])
    assert promql.over_time("quantile", ts, [1.0, np.inf], 60 * S, [30 * S], q=0.5)[0] == np.inf


def test_inf_and_nan_results_are_rows() -> None:
    from metricskit.query.analysis import over_time_frame

    frames = {
        stat: over_time_frame(_frame_series(), stat, "60s", "30s", 30 * S, 30 * S)
        for stat in ("p95", "avg", "count", "max")
    }
    rows = {stat: dict(zip(f["h"], f["value"], strict=True)) for stat, f in frames.items()}
    assert rows["p95"]["inf"] == np.inf
    assert np.isnan(rows["avg"]["both"])  # +Inf + -Inf: a NaN sample, still a row
    assert rows["max"] == {"inf": np.inf, "both": np.inf}
    # only NaN samples: dropped (metricskit's NaN policy), so no row, for count too
    assert "nan" not in rows["count"] and rows["count"]["inf"] == 2


def test_rate_rows_follow_samples_not_nan_results() -> None:
    from metricskit import Series, SeriesKey
    from metricskit.query.analysis import rate_frame

    ts = np.array([10, 20, 30], dtype=np.int64) * S
    series = [
        Series(SeriesKey.of("c", {"h": "x", "g": "1"}), ts, np.array([1.0, np.inf, np.inf])),
        Series(SeriesKey.of("c", {"h": "y", "g": "1"}), ts, np.array([1.0, 2.0, 3.0])),
    ]
    frame = rate_frame(series, "60s", "30s", 30 * S, 30 * S, fn="delta")
    values = dict(zip(frame["h"], frame["value"], strict=True))
    # y: 2 over 20 s of samples, 40 s from the window start (> 1.1 x 10 s): extended 5 s
    assert values["x"] == np.inf and values["y"] == pytest.approx(2 * 25 / 20)
    summed = rate_frame(series, "60s", "30s", 30 * S, 30 * S, by=["g"], fn="increase")
    # increase of 1, Inf, Inf: Inf - 1 = Inf; plus y's: Inf
    assert summed["value"].tolist() == [np.inf]
    nan = rate_frame(
        [Series(SeriesKey.of("c", {"h": "z"}), ts, np.array([np.inf, 1.0, np.inf]))],
        "60s",
        "30s",
        30 * S,
        30 * S,
        fn="delta",
    )
    assert len(nan) == 1 and np.isnan(nan["value"].iloc[0])  # Inf - Inf: a NaN sample


def test_deriv_of_a_constant_inf_is_nan_as_in_prometheus() -> None:
    ts = np.array([10, 20, 30], dtype=np.int64) * S
    for vals, want in [([np.inf] * 3, np.nan), ([-np.inf] * 3, np.nan), ([4.0] * 3, 0.0)]:
        got = promql.range_function("deriv", ts, vals, 60 * S, [30 * S])[0]
        np.testing.assert_equal(got, want)


@pytest.mark.parametrize(("window_s", "step_s"), [(300, 60), (45, 25), (7, 60)])
def test_presence_is_two_non_nan_samples_per_window(window_s: int, step_s: int) -> None:
    cols = _columns()
    times = np.arange(-600, 3700, step_s, dtype=np.int64) * S
    present = np.ones((len(cols), times.size), dtype=bool)
    promql.range_function_many("rate", cols, window_s * S, times, present)
    for i, (ts, vals) in enumerate(cols):
        want = promql.window_counts(ts, vals, window_s * S, times) >= 2
        np.testing.assert_array_equal(present[i], want, err_msg=f"series {i}")
