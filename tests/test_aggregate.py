"""The numpy kernels against plain per-window numpy/pandas and hand-computed PromQL."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricskit.errors import QueryError
from metricskit.query import aggregate as agg
from metricskit.query import range_functions as promql

S = 1_000_000_000
STEP = 10 * S


@st.composite
def series(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Sorted timestamps (duplicates and gaps allowed) and values with NaN, ties, extremes."""
    n = draw(st.integers(0, 120))
    gaps = draw(st.lists(st.sampled_from([0, 1, S, 3 * S, 7 * S, 40 * S]), min_size=n, max_size=n))
    t0 = draw(st.integers(-100 * S, 100 * S))
    ts = t0 + np.cumsum(np.array(gaps, dtype=np.int64))
    value = st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from([0.0, 1.0, 2.5, np.nan]),
    )
    vals = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
    return ts, vals


def per_window(ts: np.ndarray, vals: np.ndarray, windows: agg.Windows) -> list[np.ndarray]:
    """Each window's non-NaN values, found independently with a boolean mask per window."""
    out = []
    for t, start, end in zip(windows.times, windows.starts, windows.ends, strict=True):
        del start, end
        mask = (ts >= t) & (ts < t + STEP)
        chunk = vals[mask]
        out.append(chunk[~np.isnan(chunk)])
    return out


def close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True))


@settings(max_examples=200, deadline=None)
@given(series(), st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_tumbling_statistics_equal_plain_numpy(data, qs):
    ts, vals = data
    windows = agg.tumbling_windows(ts, vals, STEP)
    stats = agg.window_stats(windows, list(agg.WINDOW_STATS))
    quantiles = agg.window_quantiles(windows, qs)
    chunks = per_window(ts, vals, windows)
    assert sum(len(c) for c in chunks) == int(np.count_nonzero(~np.isnan(vals)))
    for i, chunk in enumerate(chunks):
        assert stats["count"][i] == len(chunk)
        if len(chunk) == 0:
            for name in agg.WINDOW_STATS:
                if name != "count":
                    assert np.isnan(stats[name][i]), name
            assert np.isnan(quantiles[i]).all()
            continue
        assert close(stats["sum"][i], chunk.sum())
        assert close(stats["mean"][i], chunk.mean())
        assert stats["min"][i] == chunk.min()
        assert stats["max"][i] == chunk.max()
        assert stats["first"][i] == chunk[0]
        assert stats["last"][i] == chunk[-1]
        assert close(stats["stddev"][i], chunk.std(ddof=1) if len(chunk) > 1 else np.nan)
        for j, q in enumerate(qs):
            assert close(quantiles[i, j], np.percentile(chunk, q * 100)), (q, chunk)


@settings(max_examples=150, deadline=None)
@given(series())
def test_tumbling_matches_pandas_resample(data):
    ts, vals = data
    windows = agg.tumbling_windows(ts, vals, STEP)
    frame = pd.Series(vals, index=pd.to_datetime(ts, utc=True))
    resampled = frame.resample("10s", origin="epoch")
    stats = agg.window_stats(windows, ["count", "mean", "stddev", "max"])
    if len(ts) == 0:
        assert len(windows) == 0
        return
    assert np.array_equal(resampled.count().index.asi8, windows.times)
    assert np.array_equal(resampled.count().to_numpy(), stats["count"])
    np.testing.assert_allclose(stats["mean"], resampled.mean().to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["stddev"], resampled.std().to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(stats["max"], resampled.max().to_numpy())
    p = agg.window_quantiles(windows, [0.5, 0.95])
    np.testing.assert_allclose(p[:, 1], resampled.quantile(0.95).to_numpy(), rtol=1e-9, atol=1e-9)


def test_large_windows_take_the_partition_path_and_stay_exact():
    rng = np.random.default_rng(7)
    ts = np.sort(rng.integers(0, 60 * STEP, 60_000))
    vals = np.round(rng.normal(50, 10, ts.size), 2)  # many ties
    vals[::97] = np.nan
    windows = agg.tumbling_windows(ts, vals, STEP)
    assert windows.counts.max() > 256
    qs = [0.0, 0.5, 0.5, 0.95, 0.99, 1.0]
    got = agg.window_quantiles(windows, qs)
    for i, chunk in enumerate(per_window(ts, vals, windows)):
        np.testing.assert_array_equal(got[i], np.percentile(chunk, np.array(qs) * 100))


def test_mixed_window_sizes_in_one_call():
    flat = np.arange(2000, dtype=np.float64)[::-1].copy()
    offsets = np.array([0, 0, 1, 3, 300, 300, 2000])
    got = agg.segment_quantiles(flat, offsets, [0.25, 0.9])
    for i in range(len(offsets) - 1):
        chunk = flat[offsets[i] : offsets[i + 1]]
        want = np.percentile(chunk, [25, 90]) if len(chunk) else [np.nan, np.nan]
        np.testing.assert_array_equal(got[i], want)


def test_windows_aligned_to_epoch_or_origin_and_range():
    ts = np.array([12, 15, 31], dtype=np.int64) * S
    w = agg.tumbling_windows(ts, np.ones(3), STEP)
    assert w.times.tolist() == [10 * S, 20 * S, 30 * S]
    assert w.counts.tolist() == [2, 0, 1]
    w = agg.tumbling_windows(ts, np.ones(3), STEP, origin_ns=5 * S)
    assert w.times.tolist() == [5 * S, 15 * S, 25 * S]
    assert w.counts.tolist() == [1, 1, 1]
    w = agg.tumbling_windows(ts, np.ones(3), STEP, start_ns=0, end_ns=60 * S)
    assert w.times.tolist() == [0, 10 * S, 20 * S, 30 * S, 40 * S, 50 * S]
    assert w.counts.tolist() == [0, 2, 0, 1, 0, 0]
    assert len(agg.tumbling_windows(ts[:0], np.ones(0), STEP)) == 0


def test_bad_arguments_raise_query_error():
    with pytest.raises(QueryError):
        agg.tumbling_windows([1], [1.0], 0)
    with pytest.raises(QueryError):
        agg.window_stats(agg.tumbling_windows([1], [1.0], STEP), ["median"])
    with pytest.raises(QueryError):
        agg.segment_quantiles(np.ones(3), np.array([0, 3]), [1.5])
    with pytest.raises(QueryError):
        promql.range_function("irate", [1], [1.0], STEP, [1])


# -- sliding windows and PromQL functions ------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(series(), st.sampled_from([S, 10 * S, 25 * S, 60 * S]), st.floats(0, 1))
def test_over_time_equals_per_window_numpy(data, window, q):
    ts, vals = data
    times = np.arange(-120, 400, 7, dtype=np.int64) * S
    results = {
        stat: promql.over_time(stat, ts, vals, window, times, q=q)
        for stat in promql.OVER_TIME_STATS
    }
    for i, t in enumerate(times):
        chunk = vals[(ts > t - window) & (ts <= t)]
        chunk = chunk[~np.isnan(chunk)]
        assert results["count"][i] == len(chunk)
        if len(chunk) == 0:
            assert np.isnan(results["avg"][i]) and np.isnan(results["quantile"][i])
            continue
        assert close(results["avg"][i], chunk.mean())
        assert close(results["sum"][i], chunk.sum())
        assert results["min"][i] == chunk.min() and results["max"][i] == chunk.max()
        assert results["last"][i] == chunk[-1] and results["first"][i] == chunk[0]
        assert close(results["stddev"][i], chunk.std())  # ddof=0, as Prometheus
        assert close(results["quantile"][i], np.quantile(chunk, q))


def prom_extrapolated_rate(ts, vals, t, window, is_counter, is_rate):
    """Prometheus 3's extrapolatedRate, transcribed sample by sample in plain Python."""
    sel = [(a, b) for a, b in zip(ts.tolist(), vals.tolist(), strict=True) if t - window < a <= t]
    if len(sel) < 2:
        return np.nan
    result = sel[-1][1] - sel[0][1]
    if is_counter:
        for (_, prev), (_, cur) in itertools.pairwise(sel):
            if cur < prev:
                result += prev
    range_start, range_end = (t - window) / 1e9, t / 1e9
    first_t, last_t = sel[0][0] / 1e9, sel[-1][0] / 1e9
    to_start, to_end = first_t - range_start, range_end - last_t
    sampled = last_t - first_t
    avg = sampled / (len(sel) - 1)
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if is_counter and result > 0 and sel[0][1] >= 0:
        to_start = min(to_start, sampled * (sel[0][1] / result))
    if to_end >= avg * 1.1:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= window / 1e9
    return result * factor


@st.composite
def counter(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 60))
    gaps = draw(st.lists(st.sampled_from([1, 5, 10, 15, 30]), min_size=n, max_size=n))
    ts = np.cumsum(np.array(gaps, dtype=np.int64)) * S
    steps = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    resets = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    vals, v = [], float(draw(st.integers(0, 500)))
    for inc, reset in zip(steps, resets, strict=True):
        v = float(inc) if reset and draw(st.integers(0, 9)) == 0 else v + inc
        vals.append(v)
    return ts, np.array(vals)


@settings(max_examples=150, deadline=None)
@given(counter(), st.sampled_from([30 * S, 60 * S, 300 * S]))
def test_rate_increase_delta_match_prometheus_semantics(data, window):
    ts, vals = data
    times = np.arange(0, 1000, 20, dtype=np.int64) * S
    for fn, is_counter, is_rate in [
        ("rate", True, True),
        ("increase", True, False),
        ("delta", False, False),
    ]:
        got = promql.range_function(fn, ts, vals, window, times)
        for i, t in enumerate(times.tolist()):
            want = prom_extrapolated_rate(ts, vals, t, window, is_counter, is_rate)
            assert close(got[i], want), (fn, t, got[i], want)


def test_counter_reset_by_hand():
    # samples every 10 s: 10, 20, 30, reset to 5, 15; window (0 s, 50 s]
    ts = np.array([10, 20, 30, 40, 50], dtype=np.int64) * S
    vals = np.array([10.0, 20.0, 30.0, 5.0, 15.0])
    times = np.array([50 * S])
    # increase = 15 - 10 + 30 (the value before the drop) = 35 over 40 s of samples. The
    # first sample is 10 s after the window start (< 1.1 x the 10 s interval): extend by
    # 10 s; the zero point (40 * 10 / 35 = 11.4 s back) is further. The end gap is 0.
    increase = promql.range_function("increase", ts, vals, 50 * S, times)[0]
    assert increase == pytest.approx(35 * (40 + 10) / 40, rel=1e-12)
    rate = promql.range_function("rate", ts, vals, 50 * S, times)[0]
    assert rate == pytest.approx(increase / 50, rel=1e-12)
    # delta ignores the reset: 15 - 10, extrapolated the same way
    assert promql.range_function("delta", ts, vals, 50 * S, times)[0] == pytest.approx(5 * 50 / 40)
    # a 60 s window starts 20 s before the first sample (>= 11 s): extend by 5 s only
    wider = promql.range_function("increase", ts, vals, 60 * S, times)[0]
    assert wider == pytest.approx(35 * (40 + 5) / 40, rel=1e-12)


def test_zero_point_limits_counter_extrapolation():
    # counter from 1 to 11 over 40 s: the zero point is 4 s before the first sample
    ts = np.array([20, 30, 40, 50, 60], dtype=np.int64) * S
    vals = np.array([1.0, 3.5, 6.0, 8.5, 11.0])
    got = promql.range_function("increase", ts, vals, 60 * S, np.array([60 * S]))[0]
    assert got == pytest.approx(10 * (40 + 4) / 40, rel=1e-12)


def test_rate_skips_nan_and_needs_two_samples():
    ts = np.array([10, 20, 30], dtype=np.int64) * S
    vals = np.array([1.0, np.nan, 3.0])
    times = np.array([30 * S, 15 * S])
    got = promql.range_function("increase", ts, vals, 30 * S, times)
    # the 10 s to the window start is under 1.1 x 20 s, and the zero point is 10 s back too
    assert got[0] == pytest.approx(2 * (20 + 10) / 20)
    assert np.isnan(got[1])


@settings(max_examples=80, deadline=None)
@given(series(), st.sampled_from([10 * S, 60 * S]))
def test_deriv_is_the_least_squares_slope(data, window):
    ts, vals = data
    times = np.arange(-120, 400, 13, dtype=np.int64) * S
    got = promql.range_function("deriv", ts, vals, window, times)
    for i, t in enumerate(times):
        keep = (ts > t - window) & (ts <= t) & ~np.isnan(vals)
        x, y = (ts[keep] - ts[keep][:1]) / 1e9, vals[keep]
        if len(y) < 2:
            assert np.isnan(got[i])
        elif (y == y[0]).all():
            assert got[i] == 0
        elif np.ptp(x) == 0:
            assert not np.isfinite(got[i])
        else:
            slope = np.polyfit(x, y, 1)[0]
            # below ~1e-300 the values are subnormal and both methods round to noise
            tolerance = max(1e-6 * np.abs(y).max(), 1e-300)
            assert got[i] == pytest.approx(slope, rel=1e-6, abs=tolerance)


def test_eval_times_include_end():
    assert promql.eval_times(0, 30, 10).tolist() == [0, 10, 20, 30]
    assert promql.eval_times(0, 29, 10).tolist() == [0, 10, 20]
    assert promql.eval_times(5, 0, 10).tolist() == []
    assert promql.default_range(np.array([15, 42]), 10) == (20, 50)
