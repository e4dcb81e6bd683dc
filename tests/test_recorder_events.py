"""Events recorded in one clock tick stay apart; gauges and explicit timestamps do not.

A store keeps one sample per (series, timestamp). Two requests stamped by a coarse clock
(15 ms on Windows, a ManualClock) used to land on one timestamp: the store kept one, the
histogram's counters counted two, and the request count and error rate came out low.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from metricskit.query.performance import summarize
from metricskit.recorder import REQUEST_METRIC, Recorder
from metricskit.testing import ManualClock
from tests.services import require_module

T0 = 1_732_752_000
NS = 1_000_000_000


def _stamps(store: mk.Store, name: str, tags: dict[str, str] | None = None) -> list[int]:
    return [int(t) for s in store.query(name, tags=tags) for t in s.timestamps]


def test_requests_in_one_tick_are_kept_apart_and_counted_alike() -> None:
    clock = ManualClock(T0)
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        for _ in range(3):
            rec.record_request("/api", 0.1, 500)
        rec.record_request("/api", 0.1, 200)
        rec.flush()
        errors = _stamps(store, REQUEST_METRIC, {"status": "500"})
        assert errors == [T0 * NS - 2, T0 * NS - 1, T0 * NS]  # at or before the clock's now
        assert _stamps(store, REQUEST_METRIC, {"status": "200"}) == [T0 * NS]
        count = store.latest(f"{REQUEST_METRIC}:count", tags={"status": "500"})
        assert [v for _key, _t, v in count] == [3.0]  # the totals agree with the samples
        overall = summarize(store, "1m", now=T0 + 1).overall
        assert (overall.count, overall.errors, overall.error_rate) == (4, 3, 0.75)


def test_a_bound_histogram_series_and_record_share_the_stamps() -> None:
    clock = ManualClock(T0)
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        tags = {"endpoint": "/a", "status": "200"}
        handle = rec.bind(REQUEST_METRIC, tags)
        handle.record(0.1)
        rec.record(REQUEST_METRIC, 0.2, tags)
        handle.record(0.3)
        clock.advance("1s")  # the clock moves past the stamps: its reading is used again
        handle.record(0.4)
        rec.flush()
        (series,) = store.query(REQUEST_METRIC)
        assert series.timestamps.tolist() == [T0 * NS - 2, T0 * NS - 1, T0 * NS, (T0 + 1) * NS]
        assert series.values.tolist() == [0.3, 0.2, 0.1, 0.4]


def test_a_clock_set_back_is_followed() -> None:
    clock = ManualClock(T0)
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        rec.record_request("/a", 0.1, 200)
        rec.record_request("/a", 0.1, 200)
        clock.set(T0 - 60)  # stamps must not stay ahead of the clock for a minute
        rec.record_request("/a", 0.1, 200)
        rec.flush()
        assert _stamps(store, REQUEST_METRIC) == [(T0 - 60) * NS, T0 * NS - 1, T0 * NS]


def test_a_clock_moving_less_than_a_ticks_events_still_gives_distinct_stamps() -> None:
    clock = ManualClock(T0)
    t = T0 * NS
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        for _ in range(3):
            rec.record_request("/a", 0.1, 200)  # t, t - 1, t - 2
        clock.set(np.datetime64(t + 1, "ns"))
        for _ in range(3):
            rec.record_request("/a", 0.1, 200)  # t + 1, then t would be taken: t + 2, t + 3
        rec.flush()
        assert _stamps(store, REQUEST_METRIC) == [t - 2, t - 1, t, t + 1, t + 2, t + 3]


def test_gauges_and_explicit_timestamps_keep_last_write_wins() -> None:
    clock = ManualClock(T0)
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        rec.record("app.queue.depth", 1.0)
        rec.record("app.queue.depth", 2.0)  # a newer reading replaces the older one
        rec.record_request("/a", 0.1, 200, timestamp=T0 + 5)
        rec.record_request("/a", 0.2, 200, timestamp=T0 + 5)  # the caller chose the time
        rec.flush()
        (depth,) = store.query("app.queue.depth")
        assert depth.timestamps.tolist() == [T0 * NS]
        assert depth.values.tolist() == [2.0]
        (requests,) = store.query(REQUEST_METRIC)
        assert requests.timestamps.tolist() == [(T0 + 5) * NS]
        assert requests.values.tolist() == [0.2]


def test_threads_recording_in_one_tick_get_distinct_stamps() -> None:
    clock = ManualClock(T0)
    with mk.open_store("memory://") as store, Recorder(store, clock=clock) as rec:
        handle = rec.bind(REQUEST_METRIC, {"endpoint": "/a", "status": "200"})
        start = threading.Barrier(4)

        def work() -> None:
            start.wait()
            for _ in range(2_000):
                handle.record(0.1)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec.flush()
        (series,) = store.query(REQUEST_METRIC)
        assert len(series) == 8_000
        assert np.array_equal(series.timestamps, T0 * NS - np.arange(8_000)[::-1])


CHILD = """
import sys
import metricskit as mk
from metricskit.recorder import Recorder
from metricskit.testing import ManualClock

# a clock that does not move, like a coarse one between two ticks
with Recorder(mk.open_store(sys.argv[1]), clock=ManualClock({t0})) as rec:
    for i in range(500):
        rec.record_request("/api/chat", 0.01 * (i % 7), 500 if i % 5 == 0 else 200)
        rec.record("app.queue.depth", float(i))
"""


@pytest.mark.timeout(120)
def test_another_process_reads_every_request_recorded_in_one_tick(tmp_path: Path) -> None:
    require_module("metricskit.storage.sql")
    url = f"sqlite:///{tmp_path}/m.db"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(t0=T0))
    done = subprocess.run(
        [sys.executable, str(script), url], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    with mk.open_store(url) as store:
        overall = summarize(store, "1m", now=T0 + 1).overall
        assert (overall.count, overall.errors) == (500, 100)
        assert overall.error_rate == 0.2
        totals = {key.tags["status"]: v for key, _t, v in store.latest(f"{REQUEST_METRIC}:count")}
        assert totals == {"200": 400.0, "500": 100.0}
        (depth,) = store.query("app.queue.depth")
        assert depth.values.tolist() == [499.0]  # a gauge: the last reading of the tick
