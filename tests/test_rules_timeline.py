"""The alert state machine, evaluation by evaluation, on a ManualClock and a memory store.

Each test writes one sample per step (``None``: no sample), evaluates, and checks the
state changes ``evaluate`` returns and the notifications a real Notifier delivered to a
CapturingChannel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertEvent, AlertState
from metricskit.alerting.notify import Notifier
from metricskit.alerting.rules_model import AlertRule
from metricskit.store import Store
from metricskit.testing import ManualClock
from metricskit.testing.channels import CapturingChannel

T0 = 1_700_000_000
METRIC = "app.test.value"


class Env:
    """A store, a clock, and a real Notifier delivering to a CapturingChannel."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or open_store("memory://")
        self.clock = ManualClock(T0)
        self.capture = CapturingChannel("slack")
        self.notifier = Notifier([self.capture])

    def engine(self, *rules: AlertRule) -> RuleEngine:
        return RuleEngine(list(rules), self.store, notifier=self.notifier, clock=self.clock)

    def write(self, value: float, tags: dict[str, str] | None = None, name: str = METRIC) -> None:
        key = SeriesKey.of(name, tags)
        ts = np.array([self.clock.now_ns()], dtype=np.int64)
        self.store.write([Series(key, ts, np.array([value], dtype=np.float64))])

    def offset(self, ns: int | None) -> float | None:
        return None if ns is None else ns / 1e9 - T0

    def delivered(self) -> list[AlertEvent]:
        """Every notification delivered so far (after the notifier's queues drained)."""
        assert self.notifier.flush(timeout=30)
        return self.capture.events

    def notes(self) -> list[tuple[str, float | None]]:
        """(state, seconds since T0) of every delivered notification."""
        return [(e.state.value, self.offset(e.at_ns)) for e in self.delivered()]

    def run(
        self, engine: RuleEngine, values: Sequence[float | None], step: float = 60
    ) -> list[list[str]]:
        """At T0, T0+step, ...: write the value (if any), evaluate; the changes per step."""
        out = []
        for i, v in enumerate(values):
            self.clock.set(T0 + i * step)
            if v is not None:
                self.write(v)
            out.append([e.state.value for e in engine.evaluate()])
        return out

    def close(self) -> None:
        self.notifier.close()


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


def rule(name: str = "app.high", **fields: Any) -> AlertRule:
    spec: dict[str, Any] = {
        "metric": METRIC,
        "threshold": 80.0,
        "operator": "gt",
        "channels": ["slack"],
    }
    spec.update(fields)
    return AlertRule.create(name, **spec)


def test_hysteresis_one_firing_one_resolved(env: Env) -> None:
    engine = env.engine(rule(threshold=1000, recovery_threshold=900))
    changes = env.run(engine, [980, 1010, 990, 1020, 890], step=15)
    assert changes == [[], ["pending", "firing"], [], [], ["resolved"]]
    assert env.notes() == [("firing", 15), ("resolved", 60)]
    resolved = env.delivered()[1]
    assert resolved.firing_value == 1010 and resolved.value == 890
    assert resolved.duration_fired_s == 45


def test_without_hysteresis_the_same_values_flap(env: Env) -> None:
    engine = env.engine(rule(threshold=1000))
    env.run(engine, [980, 1010, 990, 1020, 890], step=15)
    assert [s for s, _ in env.notes()] == ["firing", "resolved", "firing", "resolved"]


def test_for_zero_fires_at_the_first_true_evaluation(env: Env) -> None:
    engine = env.engine(rule())
    changes = env.run(engine, [50, 90, 95, 70])
    assert changes == [[], ["pending", "firing"], [], ["resolved"]]
    assert env.notes() == [("firing", 60), ("resolved", 180)]


def test_for_300s_with_a_dip_that_resets_the_clock(env: Env) -> None:
    engine = env.engine(rule(duration_seconds=300))
    values = [90, 90, 90, 90, 70, 90, 90, 90, 90, 90, 90]
    changes = env.run(engine, values)
    # pending at 0, dropped by the dip at 240; pending again at 300, firing 300 s later
    assert changes[0] == ["pending"]
    assert changes[4] == ["inactive"]
    assert changes[5] == ["pending"]
    assert changes[10] == ["firing"]
    assert all(c == [] for i, c in enumerate(changes) if i not in (0, 4, 5, 10))
    (alert,) = engine.active_alerts()
    assert env.offset(alert.since_ns) == 300 and env.offset(alert.fired_at_ns) == 600
    assert env.notes() == [("firing", 600)]


def test_firing_needs_true_at_every_evaluation_for_the_duration(env: Env) -> None:
    engine = env.engine(rule(duration_seconds=300))
    changes = env.run(engine, [90] * 5 + [90])
    # 0..240 pending (240 s < 300 s), fires at 300 exactly
    assert changes[:5] == [["pending"], [], [], [], []]
    assert changes[5] == ["firing"]


def test_flapping_never_fires(env: Env) -> None:
    engine = env.engine(rule(duration_seconds=120))
    changes = env.run(engine, [90, 70, 90, 70, 90, 70, 90])
    assert changes == [["pending"], ["inactive"]] * 3 + [["pending"]]
    assert env.notes() == []


def test_repeat_interval_renotifies_a_long_firing_alert(env: Env) -> None:
    engine = env.engine(rule(repeat_interval="10m"))
    changes = env.run(engine, [90] * 26)
    assert changes[0] == ["pending", "firing"] and all(c == [] for c in changes[1:])
    assert env.notes() == [("firing", 0), ("firing", 600), ("firing", 1200)]


def test_no_repeat_by_default(env: Env) -> None:
    engine = env.engine(rule())
    env.run(engine, [90] * 30)
    assert env.notes() == [("firing", 0)]


def test_keep_firing_holds_after_the_condition_clears(env: Env) -> None:
    engine = env.engine(rule(keep_firing_seconds=120))
    changes = env.run(engine, [90, 70, 70, 70, 90])
    # false from 60: kept at 60 and 120 (< 120 s), resolved at 180
    assert changes == [["pending", "firing"], [], [], ["resolved"], ["pending", "firing"]]
    assert env.notes() == [("firing", 0), ("resolved", 180), ("firing", 240)]


def test_keep_firing_resets_when_the_condition_returns(env: Env) -> None:
    engine = env.engine(rule(keep_firing_seconds=120))
    changes = env.run(engine, [90, 70, 90, 70, 70, 70])
    assert changes == [["pending", "firing"], [], [], [], [], ["resolved"]]
    assert env.notes() == [("firing", 0), ("resolved", 300)]


def test_resolved_event_carries_firing_and_recovery_values(env: Env) -> None:
    engine = env.engine(rule(duration_seconds=60))
    env.run(engine, [85, 95, 99, 40])
    assert env.notes() == [("firing", 60), ("resolved", 180)]
    firing, resolved = env.delivered()
    assert firing.value == 95 and firing.firing_value == 95
    assert resolved.firing_value == 95 and resolved.value == 40
    assert resolved.duration_fired_s == 120
    assert env.offset(resolved.active_since_ns) == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("ok", [["pending", "firing"], ["resolved"], [], []]),
        ("keep", [["pending", "firing"], [], [], ["resolved"]]),
        ("alerting", [["pending", "firing"], [], [], ["resolved"]]),
    ],
)
def test_no_data_nan_values(env: Env, policy: str, expected: list[list[str]]) -> None:
    engine = env.engine(rule(no_data=policy))
    changes = env.run(engine, [90, math.nan, math.nan, 10])
    assert changes == expected
    assert [s for s, _ in env.notes()] == ["firing", "resolved"]


def test_no_data_alerting_fires_on_nan(env: Env) -> None:
    engine = env.engine(rule(no_data="alerting"))
    changes = env.run(engine, [10, math.nan, 10])
    assert changes == [[], ["pending", "firing"], ["resolved"]]
    firing, resolved = env.delivered()
    assert firing.state is AlertState.FIRING and math.isnan(firing.value)
    assert resolved.state is AlertState.RESOLVED and resolved.value == 10


def test_nan_never_silently_resolves_under_keep(env: Env) -> None:
    engine = env.engine(rule())  # no_data defaults to keep
    changes = env.run(engine, [90] + [math.nan] * 5)
    assert changes == [["pending", "firing"]] + [[]] * 5
    assert [a.state for a in engine.active_alerts()] == [AlertState.FIRING]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # the series stops reporting at 60; lookback 1m, so it is gone from 60 on
        ("ok", [["pending", "firing"], ["resolved"], [], []]),
        ("keep", [["pending", "firing"], [], ["resolved"], []]),
        ("alerting", [["pending", "firing"], [], [], []]),
    ],
)
def test_series_gone_is_stale_after_two_evaluations(
    env: Env, policy: str, expected: list[list[str]]
) -> None:
    engine = env.engine(rule(no_data=policy, lookback="59s"))
    changes = env.run(engine, [90, None, None, None])
    assert changes == expected


def test_no_data_alerting_on_a_series_that_goes_silent(env: Env) -> None:
    engine = env.engine(rule(no_data="alerting", lookback="59s"))
    changes = env.run(engine, [10, None, None, 10])
    assert changes == [[], ["pending", "firing"], [], ["resolved"]]


def test_no_data_alerting_with_no_series_at_all(env: Env) -> None:
    engine = env.engine(rule(no_data="alerting", duration_seconds=60, tags={"host": "a"}))
    changes = env.run(engine, [None, None, None])
    assert changes == [["pending"], ["firing"], []]
    (alert,) = engine.active_alerts()
    assert alert.tags == {"host": "a"} and math.isnan(alert.value)
    env.clock.set(T0 + 180)
    env.write(10, tags={"host": "a"})
    assert [e.state.value for e in engine.evaluate()] == ["resolved"]


def test_last_value_reads_the_newest_sample_within_the_lookback(env: Env) -> None:
    engine = env.engine(rule())
    env.write(90)
    env.clock.advance(299)
    assert [e.state.value for e in engine.evaluate()] == ["pending", "firing"]
    env.clock.advance(2)  # the sample is now older than 5 minutes: gone, then stale
    assert engine.evaluate() == []
    env.clock.advance(60)
    assert [e.state.value for e in engine.evaluate()] == ["resolved"]


def test_tags_select_series_and_alerts_are_per_series(env: Env) -> None:
    engine = env.engine(rule(tags={"region": "eu"}))
    env.write(90, {"host": "a", "region": "eu"})
    env.write(95, {"host": "b", "region": "eu"})
    env.write(99, {"host": "c", "region": "us"})
    events = engine.evaluate()
    firing = sorted(e.tags["host"] for e in events if e.state is AlertState.FIRING)
    assert firing == ["a", "b"]
    assert len({e.fingerprint for e in events}) == 2


def test_stat_p95_over_a_window(env: Env) -> None:
    engine = env.engine(rule(stat="p95", window="5m", threshold=500))
    rng = np.random.default_rng(1)
    values = rng.uniform(100, 600, 40)
    for i, v in enumerate(values):
        env.clock.set(T0 + i * 15)
        env.write(float(v))
    t = T0 + 39 * 15
    inside = values[[i for i in range(40) if t - 300 < T0 + i * 15 <= t]]
    expected = float(np.percentile(inside, 95))
    events = engine.evaluate()
    state = ["pending", "firing"] if expected > 500 else []
    assert [e.state.value for e in events] == state
    engine2 = env.engine(rule("app.p95", stat="p95", window="5m", threshold=expected - 1e-9))
    (event, _) = engine2.evaluate()
    assert event.value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("stat", "reference"),
    [
        ("avg", np.mean),
        ("max", np.max),
        ("min", np.min),
        ("sum", np.sum),
        ("count", len),
        ("stddev", np.std),
        ("p50", np.median),
    ],
)
def test_stat_values_match_numpy(env: Env, stat: str, reference: Any) -> None:
    values = [3.0, 9.0, 1.0, 7.0, 4.0, 8.0]
    for i, v in enumerate(values):
        env.clock.set(T0 + i * 60)
        env.write(v)
    env.write(0.0, name="app.other.value")  # another metric is not read
    engine = env.engine(rule(stat=stat, window="4m", threshold=-1e9))
    (pending, _) = engine.evaluate()
    # (t - 4m, t] holds the last four samples
    assert pending.value == pytest.approx(float(reference(np.array(values[2:]))))


def test_silence_mutes_notifications_not_active_alerts(env: Env) -> None:
    engine = env.engine(rule(), rule("app.other", threshold=50))
    silence = engine.silence(rule="app.high", until=T0 + 150, comment="deploy")
    env.run(engine, [90, 90, 90])
    assert {a.rule: a.silenced for a in engine.active_alerts()} == {
        "app.high": True,
        "app.other": False,
    }
    assert {(e.rule, e.state.value) for e in env.delivered()} == {("app.other", "firing")}
    env.capture.clear()
    env.clock.set(T0 + 180)  # the silence ended while it still fires: now it is sent
    engine.evaluate()
    assert [(e.rule, e.state.value) for e in env.delivered()] == [("app.high", "firing")]
    assert silence not in engine.silences()


def test_resolve_of_a_never_notified_alert_is_not_sent(env: Env) -> None:
    engine = env.engine(rule())
    engine.silence(tags={}, duration="1h")
    changes = env.run(engine, [90, 10])
    assert changes == [["pending", "firing"], ["resolved"]]
    assert env.notes() == []


def test_overall_status(env: Env) -> None:
    engine = env.engine(
        rule("app.warn", threshold=50, severity="warning"),
        rule("app.crit", threshold=90, severity="critical"),
        rule("app.slow", threshold=10, duration_seconds=600, severity="critical"),
    )
    env.run(engine, [10])
    assert engine.overall_status() == "healthy"
    env.run(engine, [60])
    assert engine.overall_status() == "warning"  # app.slow is only pending
    env.run(engine, [95])
    assert engine.overall_status() == "critical"
    alerts = engine.active_alerts()
    assert alerts[0].severity.value == "critical"


def test_summary_and_description_templates(env: Env) -> None:
    engine = env.engine(
        rule(
            summary="{metric} on {tags[host]} is {value} ({operator} {threshold})",
            description="{rule} [{severity}] {tags}",
        )
    )
    env.write(91.5, {"host": "web1"})
    events = engine.evaluate()
    assert events[0].summary == "app.test.value on web1 is 91.5 (> 80)"
    assert events[0].description == "app.high [warning] host=web1"


def test_evaluate_at_an_explicit_time_ignores_later_samples(env: Env) -> None:
    engine = env.engine(rule())
    env.write(10)
    env.clock.advance(60)
    env.write(90)
    assert engine.evaluate(now=T0 + 30) == []
    assert [e.state.value for e in engine.evaluate(now=T0 + 60)] == ["pending", "firing"]


def test_disabled_rules_are_not_evaluated(env: Env) -> None:
    engine = env.engine(rule(enabled=False))
    assert env.run(engine, [90]) == [[]]
    assert engine.rules == ()
