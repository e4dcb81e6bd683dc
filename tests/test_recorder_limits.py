"""The Recorder's documented input limits: each bad input raises a clear error and loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

import metricskit as mk
from metricskit.errors import InvalidMetricError, MetricsKitError
from metricskit.model import Series
from metricskit.recorder import Recorder
from metricskit.storage.memory import MemoryBackend
from metricskit.testing import ManualClock

T0 = 1_732_752_000


@pytest.fixture
def store() -> Iterator[mk.Store]:
    with mk.open_store("memory://") as s:
        yield s


@pytest.fixture
def rec(store: mk.Store) -> Iterator[Recorder]:
    r = Recorder(store, clock=ManualClock(T0), flush_interval=None)
    yield r
    r.close()


def _raises(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidMetricError, match=match) as info:
        call()
    assert isinstance(info.value, MetricsKitError) and isinstance(info.value, ValueError)


def test_huge_int_value_is_invalid_not_overflow(rec: Recorder) -> None:
    _raises(lambda: rec.record("app.x.y", 10**400), "too large")
    _raises(lambda: rec.bind("app.x.y").record(10**400), "too large")  # type: ignore[arg-type]
    _raises(lambda: rec.record_many("app.x.y", [10**400], [T0]), "too large for int64")


def test_tag_limits(rec: Recorder) -> None:
    _raises(lambda: rec.record("app.x.y", 1.0, {"k" * 129: "v"}), "limit is 128")
    _raises(lambda: rec.record("app.x.y", 1.0, {"k": " \t "}), "whitespace|control")
    _raises(lambda: rec.record("app.x.y", 1.0, {"k": "   "}), "only whitespace")
    _raises(lambda: rec.record("app.x.y", 1.0, {f"k{i}": "v" for i in range(10_000)}), "at most 64")
    _raises(lambda: rec.record("app.x.y", 1.0, {"k": "a\nb"}), "control character")


def test_default_tags_count_towards_the_tag_limit(store: mk.Store) -> None:
    defaults = {f"d{i}": "v" for i in range(60)}
    with Recorder(store, default_tags=defaults, flush_interval=None) as rec:
        rec.record("app.x.y", 1.0, {f"k{i}": "v" for i in range(4)})
        _raises(lambda: rec.record("app.x.y", 1.0, {f"k{i}": "v" for i in range(5)}), "at most 64")


def test_record_many_rejects_2d_input(rec: Recorder, store: mk.Store) -> None:
    _raises(lambda: rec.record_many("app.x.y", np.ones((2, 5)), np.arange(10) + T0), "1-d array")
    _raises(
        lambda: rec.record_many("app.x.y", np.ones(10), (np.arange(10) + T0).reshape(2, 5)),
        "1-d array",
    )
    rec.flush()
    assert store.series() == []


@pytest.mark.parametrize(
    ("duration", "status", "why"),
    [
        (-0.1, 200, "seconds >= 0"),
        (float("nan"), 200, "seconds >= 0"),
        (float("inf"), 200, "infinite"),
        ("0.1", 200, "must be a number"),
        (0.1, 999, "not an HTTP status"),
        (0.1, 99, "not an HTTP status"),
        (0.1, -200, "not an HTTP status"),
    ],
)
def test_record_request_rejects_impossible_requests(
    rec: Recorder, store: mk.Store, duration: object, status: int, why: str
) -> None:
    _raises(lambda: rec.record_request("/api", duration, status), why)  # type: ignore[arg-type]
    rec.record_request("/api", 0.0, 599)
    rec.flush()
    assert [len(s) for s in store.query("http.request.duration_seconds")] == [1]


def test_distinct_metric_names_are_capped(store: mk.Store) -> None:
    with Recorder(store, clock=ManualClock(T0), flush_interval=None, max_metrics=100) as rec:
        for i in range(100):
            rec.record(f"app.bomb.m{i}", 1.0)
        _raises(lambda: rec.record("app.bomb.m100", 1.0), "max_metrics")
        rec.record("app.bomb.m5", 2.0, tags={"k": "new tag set of a known name"})
        rec.flush()
        assert len({k.name for k in store.series()}) == 100


def test_the_default_name_cap_stops_a_100k_name_bomb(store: mk.Store) -> None:
    with Recorder(store, clock=ManualClock(T0), flush_interval=None) as rec:
        assert rec.max_metrics == 10_000
        accepted = 0
        with pytest.raises(InvalidMetricError, match="max_metrics"):
            for i in range(100_000):
                rec.record(f"app.bomb.m{i}", 1.0)
                accepted += 1
        assert accepted == 10_000


class _BuggyBackend(MemoryBackend):
    """A plugin whose write has a bug: it raises a plain RuntimeError, not a BackendError."""

    def write(self, batch: Sequence[Series]) -> None:
        raise RuntimeError("plugin bug")


def test_a_later_flush_problem_never_reaches_the_recording_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder(mk.Store(_BuggyBackend()), max_buffer=50, batch_size=10, flush_interval=None)
    for i in range(200):  # the flush thread fails again and again meanwhile
        rec.record("app.x.y", float(i), timestamp=T0 + i)
    rec.record_many("app.x.y", np.ones(100), T0 + 1000 + np.arange(100))
    with pytest.raises(mk.BackendError, match="plugin bug"):
        rec.flush()  # an explicit flush reports it, as documented
    with caplog.at_level(logging.ERROR, logger="metricskit.recorder"):
        rec.close()  # never raises
    assert rec.dropped == 300
    assert "samples were lost" in caplog.text
