"""The engine around the state machine: restarts, failed reads, recording rules, YAML, loop."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from metricskit import BackendUnavailableError, SeriesKey, open_store
from metricskit.alerting.engine import STATE_METRIC, RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.notify import Notifier
from metricskit.model import Series
from metricskit.storage.memory import MemoryBackend
from metricskit.store import Store

from .test_rules_timeline import METRIC, T0, Env, rule


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/m.db"
    s = open_store(url)
    yield s
    s.close()


def test_restart_in_the_middle_of_pending_keeps_the_for_clock(store: Store) -> None:
    env = Env(store)
    r = rule(duration_seconds=300)
    first = env.engine(r)
    assert env.run(first, [90, 90, 90]) == [["pending"], [], []]
    del first  # "crash" after the evaluation at 120
    second = env.engine(r)
    (alert,) = second.active_alerts()
    assert alert.state is AlertState.PENDING and env.offset(alert.since_ns) == 0
    changes = []
    for i in range(3, 7):
        env.clock.set(T0 + i * 60)
        env.write(90)
        changes.append([e.state.value for e in second.evaluate()])
    assert changes == [[], [], ["firing"], []]  # fires at 300, not 300 s after the restart
    assert env.notes() == [("firing", 300)]
    env.close()


def test_restart_in_the_middle_of_firing_does_not_renotify(store: Store) -> None:
    env = Env(store)
    r = rule(repeat_interval="10m")
    first = env.engine(r)
    env.run(first, [90, 90])
    assert env.notes() == [("firing", 0)]
    second = env.engine(r)
    changes = []
    for i in range(2, 13):
        env.clock.set(T0 + i * 60)
        env.write(90 if i < 12 else 10)
        changes.append([e.state.value for e in second.evaluate()])
    assert changes == [[]] * 10 + [["resolved"]]
    # the repeat counts from the notification before the restart; the resolve is sent
    # because that firing notification went out
    assert env.notes() == [("firing", 0), ("firing", 600), ("resolved", 720)]
    resolved = env.delivered()[-1]
    assert resolved.firing_value == 90 and env.offset(resolved.fired_at_ns) == 0
    env.close()


def test_restart_keeps_keep_firing_and_silenced_unsent_state(store: Store) -> None:
    env = Env(store)
    r = rule(keep_firing_seconds=120)
    first = env.engine(r)
    env.run(first, [90, 10])  # firing, then kept since 60
    second = env.engine(r)
    env.clock.set(T0 + 120)
    env.write(10)
    assert second.evaluate() == []
    env.clock.set(T0 + 180)
    env.write(10)
    assert [e.state.value for e in second.evaluate()] == ["resolved"]
    env.close()


class StateReadFails(MemoryBackend):
    """A memory backend whose reads of the persisted alert state fail while ``broken``."""

    broken = False

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        if self.broken and key.name == STATE_METRIC:
            raise BackendUnavailableError("connection refused")
        return super().last(key, start_ns, end_ns)


def test_a_failed_restore_is_retried_not_taken_for_no_alerts() -> None:
    # evaluating without the persisted state would re-send what was already sent
    backend = StateReadFails()
    env = Env(Store(backend))
    r = rule()
    env.run(env.engine(r), [90])
    backend.broken = True
    second = env.engine(r)
    env.clock.set(T0 + 60)
    env.write(90)
    with pytest.raises(BackendUnavailableError):
        second.evaluate()
    backend.broken = False
    env.clock.set(T0 + 120)
    env.write(90)
    assert second.evaluate() == []
    (alert,) = second.active_alerts()
    assert env.offset(alert.fired_at_ns) == 0
    assert env.notes() == [("firing", 0)]
    env.close()


def test_an_unreadable_state_record_does_not_hide_the_others(store: Store) -> None:
    env = Env(store)
    r = rule()
    env.run(env.engine(r), [90])
    # a record without its labels, and one whose labels are not JSON (written by hand)
    for labels in (None, "{not json"):
        tags = {"rule": "app.high", "fingerprint": f"bad{labels is None}", "field": "state"}
        if labels is not None:
            tags["labels"] = labels
        key = SeriesKey.of(STATE_METRIC, tags)
        store.write([Series(key, np.array([T0 * 10**9]), np.array([2.0]))])
    second = env.engine(r)
    assert [a.state for a in second.active_alerts()] == [AlertState.FIRING]
    assert [h["state"] for h in second.history()] == ["firing"]
    env.close()


def test_history_lists_persisted_changes(store: Store) -> None:
    env = Env(store)
    engine = env.engine(rule(duration_seconds=60))
    env.run(engine, [90, 90, 10])
    history = [(h["state"], h["at_ns"] / 1e9 - T0) for h in engine.history(rule="app.high")]
    assert history == [("pending", 0), ("firing", 60), ("inactive", 120)]
    keys = store.series(STATE_METRIC)
    assert {k.tags["field"] for k in keys} >= {"state", "since_age", "notified_age"}
    env.close()


class FlakyBackend(MemoryBackend):
    """A memory backend whose reads fail while ``broken`` is set (a server going away)."""

    broken = False

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        if self.broken and key.name == METRIC:
            raise BackendUnavailableError("connection refused")
        return super().read(key, start_ns, end_ns)


@pytest.mark.parametrize("policy", ["keep", "alerting"])
def test_failed_read_holds_the_alert(policy: str) -> None:
    # a failed read is no data, not a gone series: three failures in a row never go stale
    backend = FlakyBackend()
    env = Env(Store(backend))
    engine = env.engine(rule(no_data=policy))
    env.run(engine, [90])
    backend.broken = True
    for i in (1, 2, 3):
        env.clock.set(T0 + i * 60)
        assert engine.evaluate() == []
    assert [a.state for a in engine.active_alerts()] == [AlertState.FIRING]
    assert env.notes() == [("firing", 0)]
    backend.broken = False
    env.clock.set(T0 + 240)
    env.write(10)
    assert [e.state.value for e in engine.evaluate()] == ["resolved"]
    env.close()


def test_failed_read_under_ok_resolves_as_the_policy_says() -> None:
    backend = FlakyBackend()
    env = Env(Store(backend))
    engine = env.engine(rule(no_data="ok"))
    env.run(engine, [90])
    backend.broken = True
    env.clock.set(T0 + 60)
    (resolved,) = engine.evaluate()
    assert resolved.state is AlertState.RESOLVED and math.isnan(resolved.value)
    env.close()


def test_recording_rules_are_derivations_evaluated_before_alerts(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        """
recording:
  business:
    cost_today:
      target: business.ai_calls.cost_today
      source: business.ai_calls.cost_usd
      function: sum
      window: 1h
alerts:
  business:
    high_ai_costs:
      metric: business.ai_calls.cost_today
      threshold: 100.0
      operator: gt
      duration_seconds: 0
      severity: warning
      channels: [slack]
"""
    )
    env = Env()
    engine = RuleEngine.from_yaml(str(path), env.store, notifier=env.notifier, clock=env.clock)
    assert [r.name for r in engine.recording] == ["business.cost_today"]
    for i, cost in enumerate([30.0, 40.0, 50.0]):
        env.clock.set(T0 + i * 60)
        env.write(cost, name="business.ai_calls.cost_usd")
        events = engine.evaluate()
    assert [e.state.value for e in events] == ["pending", "firing"]
    (series,) = env.store.query("business.ai_calls.cost_today")
    assert series.values.tolist() == [30.0, 70.0, 120.0]
    env.close()


def test_from_yaml_builds_the_notifier_from_notifications(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        """
notifications:
  log:
    path: alerts.log
alerts:
  system:
    high_cpu:
      metric: system.cpu.usage_percent
      threshold: 80.0
      operator: gt
      channels: [log]
"""
    )
    store = open_store("memory://")
    env = Env(store)
    engine = RuleEngine.from_yaml(str(path), store, clock=env.clock)
    assert isinstance(engine.notifier, Notifier) and "log" in engine.notifier.channels
    assert engine.test_channels()["log"] == "ok"
    env.write(95.0, name="system.cpu.usage_percent")
    engine.evaluate()
    engine.notifier.close()
    env.close()


def test_start_runs_evaluations_on_the_clock_driven_scheduler() -> None:
    """start() schedules evaluations by the engine's clock: a ManualClock and tick()
    drive them, no sleeping; stop() ends the schedule."""
    env = Env()
    engine = env.engine(rule(duration_seconds=60))
    env.write(95.0)
    engine.start(interval="30s")
    try:
        assert engine.running and engine.scheduler is not None
        task = engine.scheduler.tasks["evaluate"]
        engine.scheduler.tick()  # waits for the thread's first tick if it is in progress
        assert task.last_run_ns == T0 * 10**9
        (pending,) = engine.active_alerts()
        assert pending.state is AlertState.PENDING
        env.clock.advance("30s")
        env.write(95.0)
        engine.scheduler.tick()
        assert task.last_run_ns == (T0 + 30) * 10**9
        assert engine.active_alerts()[0].state is AlertState.PENDING  # due at 60 s
        env.clock.advance("29s")
        assert engine.scheduler.tick() == []  # the next evaluation is due 30 s after the last
        env.clock.advance("1s")
        env.write(95.0)
        engine.scheduler.tick()
        assert task.last_run_ns == (T0 + 60) * 10**9
        assert engine.active_alerts()[0].state is AlertState.FIRING
    finally:
        engine.stop()
    assert not engine.running
    assert env.notes() == [("firing", 60)]
    engine.start(interval="30s")  # a stopped engine starts again
    engine.stop()
    env.close()


def test_nan_written_values_and_many_series_are_vectorised() -> None:
    env = Env()
    keys = [SeriesKey.of(METRIC, {"host": f"h{i}"}) for i in range(50)]
    ts = np.array([env.clock.now_ns()], dtype=np.int64)
    env.store.write(
        [Series(k, ts, np.array([float(i) if i % 7 else math.nan])) for i, k in enumerate(keys)]
    )
    engine = env.engine(rule(threshold=40, no_data="ok"))
    events = engine.evaluate()
    hosts = sorted(int(e.tags["host"][1:]) for e in events if e.state is AlertState.FIRING)
    assert hosts == [i for i in range(41, 50) if i % 7]
    env.close()
