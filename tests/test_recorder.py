"""The Recorder against real stores; failing and slow stores are real backend subclasses."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

import metricskit as mk
from metricskit.errors import BackendError, BackendUnavailableError, InvalidMetricError
from metricskit.model import Series, SeriesKey
from metricskit.recorder import REQUEST_METRIC, Recorder
from metricskit.storage.memory import MemoryBackend
from metricskit.testing import ManualClock

T0 = 1_732_752_000
NS = 1_000_000_000
WAIT = 30.0  # generous bound for waits on events; never a timing assertion


class FlakyBackend(MemoryBackend):
    """A memory backend whose writes and flushes fail while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.attempts = 0
        self.samples_written = 0
        self.writes = 0
        self.written = threading.Event()

    def write(self, batch: Sequence[Series]) -> None:
        self.attempts += 1
        if self.failing:
            raise BackendUnavailableError("flaky backend is down")
        super().write(batch)
        self.samples_written += sum(len(s) for s in batch)
        self.writes += 1
        self.written.set()

    def flush(self) -> None:
        if self.failing:
            raise BackendUnavailableError("flaky backend is down")


class GatedBackend(MemoryBackend):
    """A memory backend whose write blocks until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.in_write = False

    def write(self, batch: Sequence[Series]) -> None:
        self.in_write = True
        self.entered.set()
        self.gate.wait(WAIT)
        super().write(batch)
        self.in_write = False


def samples(store: mk.Store, name: str | None = None) -> int:
    return sum(len(s) for s in store.query(name))


def only(store: mk.Store, name: str, tags: dict[str, str] | None = None) -> Series:
    got = store.query(name, tags=tags)
    assert len(got) == 1, got
    return got[0]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store() -> Iterator[mk.Store]:
    with mk.open_store("memory://") as s:
        yield s


@pytest.fixture
def rec(store: mk.Store, clock: ManualClock) -> Iterator[Recorder]:
    r = Recorder(store, clock=clock, flush_interval=None, batch_size=1_000_000)
    yield r
    r.close()


# -- concurrency -------------------------------------------------------------------------


def test_eight_threads_lose_nothing(store: mk.Store) -> None:
    # Small batches and a short interval so the flush thread and flush() callers race
    # with the recording threads the whole time.
    rec = Recorder(store, batch_size=5_000, flush_interval=0.01)
    per_thread = 50_000
    start = threading.Barrier(9)
    done = threading.Event()

    def work(i: int) -> None:
        shared = rec.bind("load.test.samples", {"kind": "shared"})
        start.wait()
        for j in range(per_thread):
            t = T0 + i * per_thread + j  # unique per sample: no last-write-wins collapse
            if j % 2:
                shared.record(float(j), t)
            else:
                rec.record("load.test.samples", float(j), {"thread": str(i)}, timestamp=t)

    def flusher() -> None:
        start.wait()
        while not done.is_set():
            rec.flush()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    extra = threading.Thread(target=flusher)
    for th in [*threads, extra]:
        th.start()
    for th in threads:
        th.join()
    done.set()
    extra.join()
    rec.close()
    assert samples(store) == 8 * per_thread
    shared = only(store, "load.test.samples", {"kind": "shared"})
    assert len(shared) == 4 * per_thread
    assert len(np.unique(shared.timestamps)) == 4 * per_thread
    assert rec.dropped == 0


def test_batch_size_wakes_the_flush_thread(clock: ManualClock) -> None:
    backend = FlakyBackend()
    rec = Recorder(mk.Store(backend), clock=clock, batch_size=100, flush_interval=None)
    h = rec.bind("app.queue.depth")
    for i in range(100):
        h.record(float(i), T0 + i)
    assert backend.written.wait(WAIT)
    assert backend.count(h.key) == 100
    rec.close()


def test_flush_interval_flushes_in_the_background(clock: ManualClock) -> None:
    backend = FlakyBackend()
    rec = Recorder(mk.Store(backend), clock=clock, batch_size=1_000_000, flush_interval=0.01)
    rec.record("app.queue.depth", 1.0)
    assert backend.written.wait(WAIT)
    assert backend.count(SeriesKey.of("app.queue.depth")) == 1
    rec.close()


# -- a failing or slow store -------------------------------------------------------------


def test_failing_store_never_reaches_record(clock: ManualClock) -> None:
    backend = FlakyBackend()
    store = mk.Store(backend)
    rec = Recorder(store, clock=clock, batch_size=10, flush_interval=0.001)
    backend.failing = True
    for i in range(1000):
        rec.record("app.jobs.done", float(i), {"q": "a"}, timestamp=T0 + i)
    with pytest.raises(BackendError):
        rec.flush()
    assert rec.pending == 1000
    backend.failing = False
    rec.flush()
    got = only(store, "app.jobs.done")
    assert got.values.tolist() == [float(i) for i in range(1000)]
    assert rec.dropped == 0
    assert store.query("metricskit.recorder.dropped") == []
    rec.close()


def test_retries_merge_into_one_write_and_later_samples_win(clock: ManualClock) -> None:
    backend = FlakyBackend()
    store = mk.Store(backend)
    rec = Recorder(store, clock=clock, flush_interval=None)
    h = rec.bind("app.jobs.done")
    backend.failing = True
    for samples_ in ([(T0, 1.0)], [(T0, 2.0), (T0 + 1, 2.0)], [(T0 + 1, 3.0)]):
        for t, v in samples_:
            h.record(v, t)
        with pytest.raises(BackendError):
            rec.flush()
    backend.failing = False
    rec.flush()
    assert backend.writes == 1
    got = only(store, "app.jobs.done")
    assert got.timestamps.tolist() == [T0 * NS, (T0 + 1) * NS]
    assert got.values.tolist() == [2.0, 3.0]
    rec.close()


def test_overflow_while_failing_is_counted_logged_and_written(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FlakyBackend()
    store = mk.Store(backend)
    rec = Recorder(store, clock=clock, max_buffer=100, flush_interval=None)
    h = rec.bind("app.jobs.done")
    backend.failing = True
    for i in range(60):
        h.record(float(i), T0 + i)
    with pytest.raises(BackendError):
        rec.flush()  # the 60 are now held for retry
    with caplog.at_level(logging.WARNING, logger="metricskit.recorder"):
        for i in range(60, 150):
            h.record(float(i), T0 + i)
        rec.record_many("app.jobs.done", np.ones(5), T0 + 1000 + np.arange(5))
    assert rec.dropped == 50 + 5
    assert any("dropped" in r.getMessage() for r in caplog.records)
    backend.failing = False
    clock.advance(60)
    rec.flush()
    assert only(store, "app.jobs.done").timestamps.tolist() == [(T0 + i) * NS for i in range(100)]
    dropped = only(store, "metricskit.recorder.dropped")
    assert dropped.values.tolist() == [55.0]
    assert dropped.timestamps.tolist() == [(T0 + 60) * NS]
    rec.close()


def test_slow_store_does_not_slow_record(clock: ManualClock) -> None:
    backend = GatedBackend()
    store = mk.Store(backend)
    rec = Recorder(store, clock=clock, batch_size=10, flush_interval=None)
    h = rec.bind("app.queue.depth")
    for i in range(10):
        h.record(float(i), T0 + i)
    assert backend.entered.wait(WAIT)  # the flush thread is now stuck in write()
    returned_during_write = 0
    for i in range(10, 20_010):
        rec.record("app.queue.depth", float(i), timestamp=T0 + i)
        returned_during_write += backend.in_write
    assert returned_during_write == 20_000
    backend.gate.set()
    rec.flush()
    assert len(only(store, "app.queue.depth")) == 20_010
    rec.close()


def test_close_with_a_failing_store_logs_the_loss(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FlakyBackend()
    rec = Recorder(mk.Store(backend), clock=clock, flush_interval=None)
    rec.record("app.jobs.done", 1.0)
    rec.record("app.jobs.done", 2.0, timestamp=T0 + 1)
    backend.failing = True
    with caplog.at_level(logging.ERROR, logger="metricskit.recorder"):
        rec.close()  # must not raise
    assert any("2 samples were lost" in r.getMessage() for r in caplog.records)
    assert rec.dropped == 2


# -- cardinality -------------------------------------------------------------------------


def test_cardinality_overflow_folds_new_tag_sets(
    store: mk.Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(store, clock=clock, cardinality_limit=3, flush_interval=None)
    with caplog.at_level(logging.WARNING, logger="metricskit.recorder"):
        for user in range(10):
            rec.record("app.user.requests", 1.0, {"user": str(user)})
        rec.record("app.user.requests", 1.0, {"user": "1"}, timestamp=T0 + 1)  # known: kept
        rec.bind("app.user.requests", {"user": "99"}).record(2.0, T0 + 2)
        rec.record("app.other.metric", 1.0, {"user": "1"})  # the limit is per metric name
    rec.flush()
    keys = {str(k) for k in store.series("app.user.requests")}
    assert keys == {
        'app.user.requests{user="0"}',
        'app.user.requests{user="1"}',
        'app.user.requests{user="2"}',
        'app.user.requests{overflow="true"}',
    }
    assert len(only(store, "app.user.requests", {"user": "1"})) == 2
    overflow = only(store, "app.user.requests", {"overflow": "true"})
    assert overflow.values.tolist() == [1.0, 2.0]  # same clock tick: the later sample wins
    assert rec.overflowed == 8
    warnings = [r for r in caplog.records if "cardinality_limit" in r.getMessage()]
    assert len(warnings) == 1
    rec.close()


# -- input checking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "tags"),
    [
        ("1bad.name", 1.0, None),
        ("a..b", 1.0, None),
        (42, 1.0, None),
        ("app.x.y", "1.0", None),
        ("app.x.y", None, None),
        ("app.x.y", float("inf"), None),
        ("app.x.y", float("-inf"), None),
        ("app.x.y", 1.0, {"bad-key": "v"}),
        ("app.x.y", 1.0, {"__reserved": "v"}),
        ("app.x.y", 1.0, {"k": 5}),
        ("app.x.y", 1.0, {"k": ""}),
        ("app.x.y", 1.0, {"k": ["unhashable"]}),
        ("app.x.y", 1.0, ["k", "v"]),
    ],
)
def test_bad_input_raises_at_the_call(
    rec: Recorder, store: mk.Store, name: object, value: object, tags: object
) -> None:
    with pytest.raises(InvalidMetricError):
        rec.record(name, value, tags)  # type: ignore[arg-type]
    # A key that is valid but holds a bad value must fail on the cached path too.
    rec.record("app.x.y", 1.0, {"k": "v"})
    with pytest.raises(InvalidMetricError):
        rec.record("app.x.y", "oops", {"k": "v"})  # type: ignore[arg-type]
    rec.flush()
    assert samples(store) == 1


def test_values_nan_ints_numpy_and_opt_in_inf(store: mk.Store, clock: ManualClock) -> None:
    rec = Recorder(store, clock=clock, allow_inf=True, flush_interval=None)
    for i, v in enumerate([float("nan"), 3, np.float32(1.5), np.int64(7), True, float("inf")]):
        rec.record("app.x.y", v, timestamp=T0 + i)  # type: ignore[arg-type]
    rec.close()
    got = only(store, "app.x.y").values
    assert np.isnan(got[0])
    assert got[1:].tolist() == [3.0, 1.5, 7.0, 1.0, float("inf")]


def test_bad_record_many_and_request_input(rec: Recorder, store: mk.Store) -> None:
    with pytest.raises(InvalidMetricError):
        rec.record_many("app.x.y", [1.0, 2.0], [T0])
    with pytest.raises(InvalidMetricError):
        rec.record_many("app.x.y", [1.0, float("inf")], [T0, T0 + 1])
    with pytest.raises(InvalidMetricError):
        rec.record_many("app.x.y", ["a", "b"], [T0, T0 + 1])
    with pytest.raises(InvalidMetricError):
        rec.record_many("app.x.y", [1.0], np.array(["NaT"], dtype="datetime64[ns]"))
    with pytest.raises(InvalidMetricError):
        rec.record_many("app.x.y", [1.0], [1e12])  # year 33658
    with pytest.raises(InvalidMetricError):
        rec.record("app.x.y", 1.0, timestamp=1e12)
    with pytest.raises(InvalidMetricError):
        rec.record_request("/api", 0.1, "200")  # type: ignore[arg-type]
    with pytest.raises(InvalidMetricError):
        rec.record_request("", 0.1, 200)
    rec.flush()
    assert samples(store) == 0


# -- timestamps, bind, record_many, record_request ---------------------------------------


def test_timestamp_kinds(rec: Recorder, store: mk.Store, clock: ManualClock) -> None:
    kinds: list[object] = [
        None,  # the clock: T0
        T0 + 1,
        T0 + 2.5,
        dt.datetime.fromtimestamp(T0 + 3, tz=dt.timezone.utc),
        dt.datetime(2024, 11, 28, 0, 0, 4),  # naive = UTC = T0 + 4
        dt.datetime(2024, 11, 28, 1, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        np.datetime64(T0 + 6, "s"),
        np.datetime64((T0 + 7) * NS + 1, "ns"),
        "2024-11-28T00:00:08Z",
    ]
    for i, t in enumerate(kinds):
        rec.record("app.x.y", float(i), timestamp=t)  # type: ignore[arg-type]
    rec.flush()
    got = only(store, "app.x.y").timestamps.tolist()
    assert got == [
        T0 * NS,
        (T0 + 1) * NS,
        (T0 + 2) * NS + NS // 2,
        (T0 + 3) * NS,
        (T0 + 4) * NS,
        (T0 + 5) * NS,
        (T0 + 6) * NS,
        (T0 + 7) * NS + 1,
        (T0 + 8) * NS,
    ]


def test_bind_returns_one_handle_per_series(rec: Recorder, store: mk.Store) -> None:
    h = rec.bind("app.queue.depth", {"queue": "mail", "host": "a"})
    assert rec.bind("app.queue.depth", {"host": "a", "queue": "mail"}) is h
    assert h.key == SeriesKey.of("app.queue.depth", {"queue": "mail", "host": "a"})
    h.record(3.0)
    rec.record("app.queue.depth", 4.0, {"host": "a", "queue": "mail"}, timestamp=T0 + 1)
    rec.flush()
    assert only(store, "app.queue.depth").values.tolist() == [3.0, 4.0]
    with pytest.raises(InvalidMetricError):
        rec.bind("bad name")


def test_default_tags_explicit_tags_win(store: mk.Store, clock: ManualClock) -> None:
    rec = Recorder(store, clock=clock, default_tags={"host": "web1"}, flush_interval=None)
    rec.record("app.x.y", 1.0)
    rec.record("app.x.z", 1.0, {"host": "web2", "k": "v"})
    rec.close()
    assert {str(k) for k in store.series()} == {
        'app.x.y{host="web1"}',
        'app.x.z{host="web2",k="v"}',
    }


def test_record_many_keeps_record_order_and_copies(rec: Recorder, store: mk.Store) -> None:
    values = np.array([1.0, 2.0, 3.0])
    times = np.array([T0, T0 + 1, T0 + 2], dtype=np.int64)
    rec.record("app.x.y", 10.0, timestamp=T0 + 1)
    rec.record_many("app.x.y", values=values, timestamps=times)  # overrides T0+1
    rec.record("app.x.y", 20.0, timestamp=T0 + 2)  # overrides the chunk's T0+2
    rec.record_many("app.x.y", [5.0], np.array(["2024-11-28T00:00:05"], dtype="datetime64[s]"))
    values[:] = -1.0  # the Recorder copied the arrays
    times[:] = 0
    rec.flush()
    got = only(store, "app.x.y")
    assert got.timestamps.tolist() == [(T0 + i) * NS for i in (0, 1, 2, 5)]
    assert got.values.tolist() == [1.0, 2.0, 20.0, 5.0]


def test_record_request_tags(rec: Recorder, store: mk.Store) -> None:
    rec.record_request("/api/chat", 0.245, 200, method="POST")
    rec.record_request("/api/chat", 1.5, 503)
    rec.record_request("/api/chat", 0.5, np.int64(404), timestamp=T0 + 1)
    rec.flush()
    got = {str(s.key): s.values.tolist() for s in store.query(REQUEST_METRIC)}
    assert got == {
        'http.request.duration_seconds{endpoint="/api/chat",method="POST",status="200"}': [0.245],
        'http.request.duration_seconds{endpoint="/api/chat",status="503"}': [1.5],
        'http.request.duration_seconds{endpoint="/api/chat",status="404"}': [0.5],
    }


# -- flush and close ---------------------------------------------------------------------


def test_close_flushes_and_refuses_more(store: mk.Store, clock: ManualClock) -> None:
    with Recorder(store, clock=clock, flush_interval=None) as rec:
        h = rec.bind("app.x.y")
        h.record(1.0)
        rec.record_many("app.x.z", [1.0, 2.0], [T0, T0 + 1])
    assert rec.closed
    assert samples(store) == 3
    with pytest.raises(mk.MetricsKitError, match="closed"):
        rec.record("app.x.y", 1.0)
    with pytest.raises(mk.MetricsKitError, match="closed"):
        h.record(2.0)
    with pytest.raises(mk.MetricsKitError, match="closed"):
        rec.record_many("app.x.z", [1.0], [T0])
    with pytest.raises(mk.MetricsKitError, match="closed"):
        rec.record("app.new.metric", 1.0)
    rec.flush()  # a no-op after close
    rec.close()  # and so is a second close
    assert samples(store) == 3


def test_each_sample_is_written_once(clock: ManualClock) -> None:
    backend = FlakyBackend()
    rec = Recorder(mk.Store(backend), clock=clock, flush_interval=None)
    h = rec.bind("app.x.y")
    for round_ in range(3):
        for i in range(5):
            h.record(1.0, T0 + 5 * round_ + i)
        rec.record_many("app.x.z", [1.0, 2.0], [T0 + 2 * round_, T0 + 2 * round_ + 1])
        rec.flush()
        assert rec.pending == 0
    assert backend.samples_written == 3 * (5 + 2)
    rec.close()


def test_flush_with_nothing_pending_does_not_touch_the_store(clock: ManualClock) -> None:
    backend = FlakyBackend()
    rec = Recorder(mk.Store(backend), clock=clock, flush_interval=None)
    rec.flush()
    assert backend.attempts == 0
    rec.close()


def test_an_unreferenced_recorder_is_collected_and_flushed(store: mk.Store) -> None:
    rec = Recorder(store, flush_interval=0.01)
    rec.bind("app.x.y").record(1.0)
    ref = weakref.ref(rec)
    del rec
    gc.collect()
    assert ref() is None
    assert samples(store) == 1


def test_host_tag_option() -> None:
    import socket

    store = mk.open_store("memory://")
    with Recorder(store, host=True) as rec:
        rec.record("app.x.y", 1.0)
        rec.record("app.x.z", 2.0, tags={"host": "explicit"})
    with Recorder(store, host="web-9", default_tags={"dc": "eu"}) as rec:
        rec.record("app.x.y", 3.0)
    hosts = {(k.name, k.tags.get("host"), k.tags.get("dc")) for k in store.series()}
    assert ("app.x.y", socket.gethostname(), None) in hosts
    assert ("app.x.z", "explicit", None) in hosts
    assert ("app.x.y", "web-9", "eu") in hosts
