"""The Collector's schedule, isolation and bookkeeping, with a real Recorder and Store."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from metricskit.collect.collector import SELF_METRIC, Collector
from metricskit.collect.sources import Business, DatabaseCheck, HttpCheck, Sample, Source, System
from metricskit.collect.sources.config import METRIC_GROUPS, plan_sources, resolve_enabled
from metricskit.errors import ConfigError, InvalidArgumentError
from metricskit.recorder import Recorder
from metricskit.storage.memory import MemoryBackend
from metricskit.store import Store
from metricskit.testing import ManualClock


@pytest.fixture
def store():
    s = Store(MemoryBackend())
    yield s
    s.close()


@pytest.fixture
def rec(store):
    r = Recorder(store, flush_interval=None)
    yield r
    r.close()


class Counting(Source):
    """Counts its runs; optionally blocks until released."""

    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.calls = 0

    def collect(self) -> list[Sample]:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        return [Sample(f"test.{self.name}.runs", float(self.calls))]


def names(samples):
    return sorted({s.name for s in samples})


def test_collect_once_records_into_the_store(rec, store):
    col = Collector(rec)
    col.add(System(metrics=["system.load.1min"]), "60s")
    col.add(lambda: {"app.queue.depth": 3}, "300s", name="queue")
    col.add(
        lambda: [Sample("app.x", 1.5, {"k": "v"}), ("app.y", 2), ("app.z", 3, {"a": "b"})],
        "300s",
        name="many",
    )
    got = col.collect_once()
    assert names(got) == sorted(
        ["system.load.1min", "app.queue.depth", "app.x", "app.y", "app.z", SELF_METRIC]
    )
    rec.flush()
    assert [k.name for k in store.series(name="app.x")] == ["app.x"]
    (x,) = store.query(name="app.x")
    assert x.tags == {"k": "v"} and list(x.values) == [1.5]
    own = {s.tags["source"] for s in store.query(name=SELF_METRIC)}
    assert own == {"system", "queue", "many"}
    col.close()


def test_failing_source_is_logged_counted_and_isolated(rec, caplog):
    col = Collector(rec)
    col.add(lambda: 1 / 0, "1s", name="broken")
    col.add(lambda: "not samples", "1s", name="garbage")
    col.add(lambda: {"bad name!": 1.0, "app.ok": 1.0}, "1s", name="half")
    col.add(lambda: {"app.fine": 1.0}, "1s", name="fine")
    with caplog.at_level(logging.WARNING, logger="metricskit.collect.collector"):
        got = col.collect_once()
        col.collect_once()
    assert "app.fine" in names(got) and "app.ok" in names(got)
    stats = col.stats()
    assert stats["broken"]["errors"] == 2 and "ZeroDivisionError" in stats["broken"]["last_error"]
    assert stats["garbage"]["errors"] == 2
    assert stats["half"]["errors"] == 2  # one rejected sample per run
    assert stats["fine"]["errors"] == 0 and stats["fine"]["runs"] == 2
    broken = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(broken) == 1  # the same failure again goes to DEBUG
    col.close()


def test_each_source_runs_on_its_own_interval(rec):
    clock = ManualClock(1_700_000_000)
    col = Collector(rec, clock=clock)
    fast, slow = Counting("fast"), Counting("slow")
    col.add(fast, "10s")
    col.add(slow, "30s")
    for _ in range(13):  # t = 0, 5, ..., 60
        col.run_pending(wait=True)
        clock.advance("5s")
    assert (fast.calls, slow.calls) == (7, 3)
    col.close()


def test_a_stall_does_not_cause_a_burst(rec):
    clock = ManualClock(1_700_000_000)
    col = Collector(rec, clock=clock)
    src = Counting("s")
    col.add(src, "10s")
    col.run_pending(wait=True)
    clock.advance("95s")  # nine runs missed
    col.run_pending(wait=True)
    col.run_pending(wait=True)
    assert src.calls == 2
    clock.advance("10s")
    col.run_pending(wait=True)
    assert src.calls == 3
    col.close()


def test_a_clock_set_backwards_does_not_stall_a_source(rec):
    clock = ManualClock(1_700_000_000)
    col = Collector(rec, clock=clock)
    src = Counting("s")
    col.add(src, "60s")
    col.run_pending(wait=True)
    clock.set(1_700_000_000 - 3600)  # an hour back: waiting for the old due time stalls
    col.run_pending(wait=True)
    assert src.calls == 2
    clock.advance("30s")
    col.run_pending(wait=True)
    assert src.calls == 2  # the rhythm restarted from the new now
    col.close()


def test_hanging_source_is_skipped_and_its_late_samples_dropped(rec):
    clock = ManualClock(1_700_000_000)
    col = Collector(rec, clock=clock)
    gate = threading.Event()
    hung, ok = Counting("hung", gate), Counting("ok")
    job = col.add(hung, "10s", timeout=0.2)
    col.add(ok, "10s")
    first = col.collect_once()  # waits at most ~0.2 s for the hung source
    assert names(first) == sorted(["test.ok.runs", SELF_METRIC])
    for _ in range(3):
        clock.advance("10s")
        col.run_pending(wait=True)
    assert ok.calls == 4 and hung.calls == 1
    assert job.busy and col.stats()["hung"]["skipped"] == 3
    assert col.stats()["hung"]["running_for_s"] > 0
    gate.set()
    assert col.wait(timeout=10)
    stats = col.stats()["hung"]
    assert stats["timeouts"] == 1 and stats["runs"] == 1
    assert stats["last_samples"] == 1  # only its own duration: the late samples were dropped
    col.close()


def test_background_loop_with_real_short_intervals(rec):
    gate = threading.Event()
    fast, slow, hung = Counting("fast"), Counting("slow"), Counting("hung", gate)
    col = Collector(rec)
    col.add(fast, 0.05)
    col.add(slow, 0.25)
    col.add(hung, 0.05, timeout=0.1)
    col.add(lambda: 1 / 0, 0.05, name="broken")
    col.start()

    def ran_enough() -> bool:
        stats = col.stats()
        # the loop survived every failure and kept skipping the hung source
        return (
            fast.calls >= 5
            and slow.calls >= 2
            and stats["hung"]["skipped"] >= 3
            and stats["broken"]["errors"] >= 5
        )

    # real intervals: wait for the real loop to get there, not for a fixed time
    deadline = time.monotonic() + 60
    while not ran_enough():
        assert time.monotonic() < deadline, col.stats()
        gate.wait(0.02)  # never set here: a short pause between looks
    col.stop(timeout=1)
    gate.set()
    assert fast.calls > slow.calls  # the ordering is certain, the counts are not
    assert hung.calls == 1
    assert not col.running
    col.close()


def test_start_with_duration_ends_by_itself(rec):
    col = Collector(rec)
    src = Counting("s")
    col.add(src, 0.05)
    col.start(duration=0.3)
    with pytest.raises(RuntimeError):
        col.start()
    col.join(timeout=10)
    assert not col.running and src.calls >= 1
    col.close()


def test_only_filter_names_and_self_metrics_off(rec):
    col = Collector(rec, self_metrics=False)
    col.add(lambda: {"a.one": 1, "a.two": 2}, "1s", name="x", only=["a.two"])
    second = col.add(lambda: {"a.three": 3}, "1s", name="x")
    assert second.name == "x#2"
    assert names(col.collect_once()) == ["a.three", "a.two"]
    with pytest.raises(InvalidArgumentError):
        col.add(42, "1s")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        col.add(lambda: {}, 0)
    col.remove("x#2")
    assert [j.name for j in col.sources] == ["x"]
    col.close()


def test_samples_are_stamped_by_the_collector_clock(rec, store):
    clock = ManualClock(1_700_000_000)
    col = Collector(rec, clock=clock)
    col.add(lambda: {"a.b": 1.0}, "1s", name="x")
    col.collect_once()
    rec.flush()
    (series,) = store.query(name="a.b")
    assert list(series.timestamps) == [1_700_000_000 * 10**9]
    col.close()


SEED = {
    "interval_seconds": 60,
    "retention_days": 30,
    "enabled_metrics": {
        "system": ["cpu_usage", "memory_usage", "disk_usage"],
        "application": ["health_status", "response_times"],
        "business": ["ai_api_calls", "user_activity"],
    },
}


def test_from_config_with_the_seed_section(rec, store, tmp_path):
    col = Collector.from_config(
        rec,
        SEED,
        app_url="http://127.0.0.1:1",
        database_url=f"sqlite:///{tmp_path}/a.db",
        store=store,
    )
    kinds = [type(j.source) for j in col.sources]
    assert kinds == [System, HttpCheck, HttpCheck, HttpCheck, DatabaseCheck, Business]
    assert all(j.interval_ns == 60 * 10**9 for j in col.sources)
    system = col.sources[0].source
    assert set(system.metrics) == {
        "system.cpu.usage_percent",
        "system.load.1min",
        "system.memory.usage_percent",
        "system.memory.available_gb",
        "system.disk.usage_percent",
        "system.disk.free_gb",
    }
    got = names(col.collect_once())
    assert "app.health.status" in got and "db.status" in got and "db.connection_time_ms" in got
    assert "business.ai_calls.cost_today" in got and "business.errors.rate_per_hour" not in got
    assert "system.network.bytes_sent" not in got
    col.close()


def test_from_config_groups_intervals_and_errors(store):
    plan = plan_sources(
        {
            "interval_seconds": 30,
            "intervals": {"business": 300},
            "enabled_metrics": {"system": ["system.processes.count"], "application": []},
        },
        store=store,
    )
    assert [(type(p.source), p.interval_s) for p in plan] == [(System, 30), (Business, 300)]
    assert plan[0].only == {"system.processes.count"}
    assert len(plan[1].source.derivations) == 4  # a group left out is collected entirely
    assert plan_sources({"enabled_metrics": {"business": ["all"]}}, store=None)[0].interval_s == 60
    assert resolve_enabled("application", ["database"]) == set(
        METRIC_GROUPS["application"]["database"]
    )
    for bad, message in [
        ({"interval_second": 60}, "did you mean 'interval_seconds'"),
        ({"enabled_metrics": {"sys": []}}, "unknown key 'sys' in collection.enabled_metrics"),
        ({"enabled_metrics": {"system": ["cpu"]}}, "unknown name 'cpu'"),
        ({"enabled_metrics": {"system": "cpu_usage"}}, "must be a list"),
        ({"interval_seconds": 0}, "must be > 0"),
        ({"interval_seconds": "soon"}, "interval_seconds"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            plan_sources(bad)


def test_planned_checks_take_the_collectors_clock(store):
    clock = ManualClock(1_700_000_000)
    plan = plan_sources(
        {"enabled_metrics": {"system": [], "business": [], "application": ["all"]}},
        app_url="http://127.0.0.1:9",
        database_url="sqlite://",
        store=store,
        clock=clock,
    )
    checks = [p.source for p in plan if isinstance(p.source, (HttpCheck, DatabaseCheck))]
    assert len(checks) == 4 and all(c.clock is clock for c in checks)


def test_a_closed_recorder_is_counted_and_logged_once_per_run(store, caplog):
    rec = Recorder(store, flush_interval=None)
    rec.close()
    col = Collector(rec)
    col.add(lambda: {"a.one": 1, "a.two": 2}, "1s", name="x")
    with caplog.at_level(logging.WARNING, logger="metricskit.collect.collector"):
        assert col.collect_once() == []
    assert col.stats()["x"]["errors"] == 3  # two samples and the collector's own metric
    (line,) = [r.getMessage() for r in caplog.records]
    assert "closed" in line and "(and 2 more)" in line
    col.close()


def test_from_config_defaults_to_the_recorders_store(rec, store):
    col = Collector.from_config(rec, {"enabled_metrics": {"system": [], "application": []}})
    (job,) = col.sources
    assert isinstance(job.source, Business) and job.source.store is store
    col.close()


def test_stop_right_after_start_stops(rec):
    col = Collector(rec)
    col.add(Counting("s"), 0.05)
    for _ in range(20):
        col.start()
        col.stop(timeout=5)
        assert not col.running
    col.close()


def test_the_self_metric_keeps_its_0_1_name(rec, store):
    # The layout move rewrote module paths inside strings and renamed this metric with
    # them (metricskit.collect.collector...); a metric name is data in users' stores,
    # dashboards and alert rules, not a module path.
    from metricskit.server.exposition import generate

    col = Collector(rec)
    col.add(lambda: {"app.queue.depth": 3}, "60s", name="queue")
    col.collect_once()
    rec.flush()
    col.close()
    assert [k.name for k in store.series(name="metricskit.collector.duration_seconds")] == [
        "metricskit.collector.duration_seconds"
    ]
    text = generate(store).decode()
    assert 'metricskit_collector_duration_seconds{source="queue"}' in text
    assert "Time one collection pass of a source took" in text
