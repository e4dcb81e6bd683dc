import json

import numpy as np
import pytest

import metricskit as mk
from metricskit.query.performance import (
    OVERALL,
    PerformanceThresholds,
    detect_issues,
    summarize,
    summarize_series,
)
from metricskit.recorder import Recorder
from metricskit.testing import ManualClock

T0 = 1_795_046_400
WINDOW = 300


def traffic(
    rec: Recorder, endpoint: str, durations: list[float], statuses: list[int], t0: float
) -> None:
    step = WINDOW / max(len(durations), 1)
    for i, (d, status) in enumerate(zip(durations, statuses, strict=True)):
        rec.record_request(endpoint, d, status, method="GET", timestamp=t0 + i * step)


def healthy(n: int, rng: np.random.Generator) -> list[float]:
    return list(rng.uniform(0.05, 0.3, n))


@pytest.fixture
def store_and_rec():  # type: ignore[no-untyped-def]
    store = mk.open_store("memory://")
    rec = Recorder(store, clock=ManualClock(T0), flush_interval=3600)
    yield store, rec
    rec.close()


def test_summary_figures_match_numpy(store_and_rec) -> None:  # type: ignore[no-untyped-def]
    store, rec = store_and_rec
    rng = np.random.default_rng(3)
    chat = list(rng.lognormal(-1, 0.5, 400))
    health = list(rng.uniform(0.001, 0.01, 100))
    chat_status = [500 if i % 20 == 0 else 200 for i in range(400)]
    traffic(rec, "/api/chat", chat, chat_status, T0)
    traffic(rec, "/api/health", health, [200] * 100, T0)
    rec.flush()
    summary = summarize(store, window=WINDOW, now=T0 + WINDOW)
    assert summary.overall.count == 500
    assert summary.overall.throughput_rps == pytest.approx(500 / WINDOW)
    both = np.array(chat + health)
    assert summary.overall.mean_seconds == pytest.approx(both.mean(), rel=1e-12)
    for p in (50, 75, 90, 95, 99):
        assert summary.overall.percentiles_seconds[f"p{p}"] == pytest.approx(
            np.percentile(both, p), rel=1e-12
        )
    chat_perf = summary.endpoints["/api/chat"]
    assert chat_perf.errors == 20
    assert chat_perf.error_rate == pytest.approx(0.05)
    assert chat_perf.slow_requests == int((np.array(chat) > 1.0).sum())
    assert chat_perf.percentiles_seconds["p95"] == pytest.approx(np.percentile(chat, 95), rel=1e-12)
    frame = summary.to_frame()
    assert list(frame.index) == [OVERALL, "/api/chat", "/api/health"]
    assert "p99" in frame.columns
    json.dumps(summary.to_dict())


def test_empty_window_gives_nan_not_errors() -> None:
    summary = summarize_series([], 0, 10**9)
    assert summary.overall.count == 0
    assert summary.endpoints == {}
    assert json.loads(json.dumps(summary.to_dict()))["overall"]["mean_seconds"] is None


def test_clean_traffic_has_no_issues(store_and_rec) -> None:  # type: ignore[no-untyped-def]
    store, rec = store_and_rec
    rng = np.random.default_rng(1)
    for w in range(7):
        for endpoint in ("/a", "/b"):
            traffic(rec, endpoint, healthy(50, rng), [200] * 50, T0 + w * WINDOW)
    rec.flush()
    assert detect_issues(store, window=WINDOW, now=T0 + 7 * WINDOW) == []


def test_each_kind_of_issue_is_found(store_and_rec) -> None:  # type: ignore[no-untyped-def]
    store, rec = store_and_rec
    rng = np.random.default_rng(2)
    for w in range(6):  # baseline windows: everything healthy
        for endpoint in ("/slow", "/errors", "/tail", "/degraded", "/fine"):
            traffic(rec, endpoint, healthy(40, rng), [200] * 40, T0 + w * WINDOW)
    now0 = T0 + 6 * WINDOW
    traffic(rec, "/slow", [2.5] * 40, [200] * 40, now0)  # mean > 2 s
    traffic(rec, "/errors", healthy(40, rng), [200] * 36 + [503] * 4, now0)  # 10 % errors
    traffic(rec, "/tail", [0.1] * 36 + [9.0] * 4, [200] * 40, now0)  # p95 > 5 s, mean < 2 s
    traffic(rec, "/degraded", [0.9] * 40, [200] * 40, now0)  # ~4x its baseline p95
    traffic(rec, "/fine", healthy(40, rng), [200] * 40, now0)
    rec.flush()
    issues = detect_issues(store, window=WINDOW, now=now0 + WINDOW)
    found = {(i.endpoint, i.figure) for i in issues}
    assert ("/slow", "mean_seconds") in found
    assert ("/errors", "error_rate") in found
    assert ("/tail", "p95_seconds") in found
    assert ("/degraded", "p95_degradation") in found
    assert not any(endpoint == "/fine" for endpoint, _ in found)
    errors = next(i for i in issues if i.endpoint == "/errors" and i.figure == "error_rate")
    assert errors.value == pytest.approx(0.1) and errors.threshold == 0.05
    assert "/errors" in errors.message and "10.0%" in errors.message


def test_thresholds_are_configurable(store_and_rec) -> None:  # type: ignore[no-untyped-def]
    store, rec = store_and_rec
    traffic(rec, "/x", [0.5] * 20, [200] * 20, T0)
    rec.flush()
    strict = PerformanceThresholds(mean_seconds=0.1, baseline_windows=0, percentiles=(50,))
    issues = detect_issues(store, window=WINDOW, now=T0 + WINDOW, thresholds=strict)
    assert {(i.endpoint, i.figure) for i in issues} == {
        (OVERALL, "mean_seconds"),
        ("/x", "mean_seconds"),
    }
