"""One evaluator per store: engines on one store agree on a leader through heartbeats.

Two processes evaluating one store's rules (``metricskit start`` beside an application's
``MonitoringService().start_monitoring()``, hosts sharing a PostgreSQL store) must send
each notification once; the other stands by, follows the stored state, and takes over
without re-sending when the leader's heartbeat goes stale. A ManualClock drives time;
the cross-process tests run real processes on one SQLite file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metricskit.alerting.engine import LEASE_METRIC, Evaluator, RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.notify import Notifier
from metricskit.model import Series, SeriesKey
from metricskit.store import Store, open_store
from metricskit.testing.channels import CapturingChannel
from tests.services import POSTGRES_URL, require_database

from .test_rules_timeline import METRIC, T0, Env, rule

INTERVAL = 60.0
"""The evaluation interval the engines declare: a lease of 180 s."""


class Member:
    """An engine with its own notifier and capturing channel, as a second process has."""

    def __init__(self, env: Env, evaluator: Evaluator | None, **options: object) -> None:
        self.capture = CapturingChannel("slack")
        self.notifier = Notifier([self.capture])
        self.engine = RuleEngine(
            [rule()],
            env.store,
            notifier=self.notifier,
            clock=env.clock,
            evaluator=evaluator,
            **options,  # type: ignore[arg-type]
        )
        self.engine.evaluation_interval_seconds = INTERVAL

    def sent(self) -> list[str]:
        assert self.notifier.flush(timeout=30)
        return [e.state.value for e in self.capture.events]

    def close(self) -> None:
        self.notifier.close()


def _close(*members: Member) -> None:
    for m in members:
        m.close()


def _step(env: Env, value: float, *members: Member) -> list[list[str]]:
    """Write ``value`` now, evaluate every member in order, then advance a minute."""
    env.write(value)
    changes = [[e.state.value for e in m.engine.evaluate()] for m in members]
    env.clock.advance(INTERVAL)
    return changes


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """One store the members share; PostgreSQL as hosts sharing one store have it."""
    options: dict[str, Any] = {}
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/m.db"
    else:
        url = require_database(POSTGRES_URL)
        options["table_prefix"] = f"mk{uuid.uuid4().hex[:10]}_"
    store = open_store(url, **options)
    yield Env(store)
    if options:
        store.delete()
    store.close()


def test_two_engines_send_each_notification_once(env: Env) -> None:
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    for value in (90, 95, 50):
        _step(env, value, a, b)
    assert a.sent() == ["firing", "resolved"] and b.sent() == []
    assert b.engine.evaluating() == {"evaluator": "b", "leader": "a", "leading": False}
    history = [h["state"] for h in a.engine.history()]
    assert history == ["firing", "inactive"]  # one state record per change, not two
    _close(a, b)


def test_the_later_engine_evaluating_first_hands_over_without_resending(env: Env) -> None:
    # b's first evaluation runs before a's heartbeat exists: b leads it and sends; a then
    # leads (it started first) from the state b stored, and sends nothing twice
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    assert _step(env, 90, b, a) == [["pending", "firing"], []]
    _step(env, 95, b, a)
    _step(env, 50, b, a)
    assert b.sent() == ["firing"] and a.sent() == ["resolved"]
    _close(a, b)


def test_a_standby_follows_the_stored_state_and_warns_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    with caplog.at_level(logging.WARNING, "metricskit.alerting.engine"):
        _step(env, 90, a, b)
        _step(env, 95, a, b)
    assert [r.getMessage() for r in caplog.records] == [
        "rules: a evaluates the alert rules of this store; b stands by"
    ]
    (alert,) = b.engine.active_alerts()
    assert alert.state is AlertState.FIRING and env.offset(alert.since_ns) == 0
    assert b.engine.rule_evaluations() == {}  # it evaluated nothing
    _close(a, b)


def test_the_standby_takes_over_after_the_lease_and_sends_nothing_twice(env: Env) -> None:
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    _step(env, 90, a, b)  # a fires and notifies at T0
    # a is killed: its heartbeat of T0 holds for 180 s, then b goes on where a stopped
    changes = [_step(env, 95, b)[0] for _ in range(4)]
    assert changes == [[], [], [], []]
    assert b.engine.leader == Evaluator(2, "b")  # took over at T0 + 240
    assert _step(env, 50, b) == [["resolved"]]
    assert a.sent() == ["firing"] and b.sent() == ["resolved"]
    _close(a, b)


def test_a_released_lead_passes_at_once(env: Env) -> None:
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    _step(env, 90, a, b)
    a.engine.release()  # what stop() does
    assert _step(env, 50, b) == [["resolved"]]
    assert a.sent() == ["firing"] and b.sent() == ["resolved"]
    _close(a, b)


def test_a_restarted_leader_stands_by_behind_the_one_that_took_over(env: Env) -> None:
    a, b = Member(env, Evaluator(1, "a")), Member(env, Evaluator(2, "b"))
    _step(env, 90, a, b)
    env.clock.advance(4 * INTERVAL)  # a dies and b has not evaluated yet
    again = Member(env, Evaluator(3, "a-restarted"))
    _step(env, 95, again, b)
    _step(env, 50, again, b)
    assert again.sent() == [] and b.sent() == ["resolved"]
    assert again.engine.leader == Evaluator(2, "b")
    _close(a, b, again)


def test_not_exclusive_engines_both_evaluate(env: Env) -> None:
    a = Member(env, Evaluator(1, "a"), exclusive=False)
    b = Member(env, Evaluator(2, "b"), exclusive=False)
    _step(env, 50, a, b)  # b's first evaluation restores a's state: make both hold none
    _step(env, 90, a, b)
    assert a.sent() == ["firing"] and b.sent() == ["firing"]
    assert env.store.series(LEASE_METRIC) == []  # and write no heartbeat
    _close(a, b)


def test_the_heartbeat_is_not_listed_among_the_metrics(env: Env) -> None:
    from metricskit.cli.commands import _latest_by_category

    a = Member(env, None)
    _step(env, 90, a)
    (key,) = env.store.series(LEASE_METRIC)
    assert key.tags["evaluator"] == a.engine.evaluator.id
    assert set(_latest_by_category(env.store)) == {"app"}  # as the alert state series
    a.close()


# -- real processes on one SQLite file ----------------------------------------------------

_CHILD = r"""
import json, sys
from metricskit import open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.notify import Notifier
from metricskit.alerting.rules_model import AlertRule
from metricskit.testing.channels import CapturingChannel
from tests.services import POSTGRES_URL, require_database

url, metric, times = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
capture = CapturingChannel("slack")
notifier = Notifier([capture])
rule = AlertRule.create(
    "app.high", metric=metric, threshold=80.0, operator="gt", channels=["slack"]
)
engine = RuleEngine([rule], open_store(url), notifier=notifier)
engine.evaluation_interval_seconds = 60
for t in times:
    engine.evaluate(now=t)
assert notifier.flush(timeout=60)  # delivery is asynchronous
notifier.close()
print(json.dumps({
    "me": engine.evaluator.id,
    "leader": engine.leader.id,
    "sent": [e.state.value for e in capture.events],
    "active": [a.state.value for a in engine.active_alerts()],
}))
"""


def _child(url: str, offsets: list[int]) -> dict[str, object]:
    times = [T0 + t for t in offsets]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, url, METRIC, json.dumps(times)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _write(store: Store, values: dict[int, float]) -> None:
    for offset, value in values.items():
        ts = np.array([(T0 + offset) * 1_000_000_000], dtype=np.int64)
        store.write([Series(SeriesKey.of(METRIC), ts, np.array([value], dtype=np.float64))])
    store.flush()


def test_processes_on_one_sqlite_file_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = open_store(url)
    _write(store, {0: 90, 60: 95, 120: 95, 180: 95, 240: 95, 300: 95, 420: 50})
    # a process leads, fires and exits: a process of this host that is gone does not
    # hold the lead for the lease
    first = _child(url, [0, 60])
    assert first["sent"] == ["firing"] and first["leader"] == first["me"]
    here = Env(store)
    here.clock.set(T0 + 180)
    capture = CapturingChannel("slack")
    notifier = Notifier([capture])
    engine = RuleEngine([rule()], store, notifier=notifier, clock=here.clock)
    engine.evaluation_interval_seconds = INTERVAL
    assert engine.evaluate() == []  # takes over at once, and does not send again
    assert engine.leader == engine.evaluator
    # a process started later stands by while this one's heartbeat is fresh (180 s)
    second = _child(url, [240, 300])
    assert second["sent"] == [] and second["leader"] == engine.evaluator.id
    assert second["active"] == ["firing"]  # the stored state, as this process left it
    # this one stops evaluating (but lives): the next process waits out the lease
    third = _child(url, [420])
    assert third["sent"] == ["resolved"] and third["leader"] == third["me"]
    assert notifier.flush(timeout=30) and capture.events == []
    notifier.close()
    store.close()


def test_the_service_status_says_who_evaluates(tmp_path: Path) -> None:
    from metricskit.service import MonitoringService

    config = tmp_path / "monitoring.yaml"
    config.write_text("storage: {type: sqlite, connection_string: metrics.db}\n")
    service = MonitoringService(str(config))
    try:
        me = service.engine.evaluator.id
        assert service.get_monitoring_status()["evaluator"] == {
            "evaluator": me,
            "leader": None,  # nobody has evaluated this store yet
            "leading": False,
        }
        service.engine.evaluate()
        status = service.get_monitoring_status()["evaluator"]
        assert status == {"evaluator": me, "leader": me, "leading": True}
    finally:
        service.close()
