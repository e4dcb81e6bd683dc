"""Persisted alert state on every backend: only changed fields, episodes, retention.

The engine writes only the state fields that changed, so a restart must tell the fields
of the current pending/firing episode from those an earlier episode of the same (rule,
series) left behind; and retention (``metricskit cleanup``, ``Store.delete(before=)``)
must never delete the state of an alert that is still active.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metricskit.alerting.engine import STATE_METRIC
from metricskit.alerting.events import AlertState
from metricskit.model import Selector
from metricskit.store import Store, open_store
from tests.services import MARIADB_URL, POSTGRES_URL, require_database

from .test_rules_timeline import T0, Env, rule

HOUR = 3600


@pytest.fixture(params=["memory", "sqlite", "parquet", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    options: dict[str, str] = {}
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/m.db"
    elif request.param == "parquet":
        url = f"parquet://{tmp_path}/pq"
    else:
        url = require_database(POSTGRES_URL if request.param == "postgresql" else MARIADB_URL)
        options["table_prefix"] = f"mk{uuid.uuid4().hex[:10]}_"
    s = open_store(url, **options)
    yield s
    if options:
        s.delete()
    s.close()


def _cleanup(store: Store, days: float, now_s: float) -> None:
    """What ``metricskit cleanup --days N`` does: delete old samples series by series."""
    cutoff = round((now_s - days * 86_400) * 1e9)
    for key in store.series():
        store.backend.delete_before(cutoff, Selector.for_key(key))
    store.flush()


def test_a_new_pending_alert_writes_three_fields(store: Store) -> None:
    env = Env(store)
    env.run(env.engine(rule(duration_seconds=300)), [90])
    fields = {k.tags["field"] for k in store.series(STATE_METRIC)}
    assert fields == {"state", "since_age", "value"}
    env.close()


def test_restart_ignores_fields_of_an_earlier_episode(store: Store) -> None:
    env = Env(store)
    r = rule(duration_seconds=60, keep_firing_seconds=60)
    first = env.engine(r)
    # fires at 60 (notified), kept at 120, resolved at 180; pending again at 240
    assert env.run(first, [90, 90, 10, 10, 90]) == [
        ["pending"],
        ["firing"],
        [],
        ["resolved"],
        ["pending"],
    ]
    second = env.engine(r)
    (alert,) = second.active_alerts()
    # the first episode's fired/notified/keep clocks must not leak into the second
    assert alert.state is AlertState.PENDING
    assert env.offset(alert.since_ns) == 240 and alert.fired_at_ns is None
    (restored,) = second._states["app.high"].alerts.values()
    assert restored.notified_at_ns is None and restored.keep_since_ns is None
    assert restored.firing_value is None and restored.value == 90
    env.clock.set(T0 + 300)
    env.write(90)
    assert [e.state.value for e in second.evaluate()] == ["firing"]
    # a fresh firing notification: the earlier episode's one does not count
    assert env.notes() == [("firing", 60), ("resolved", 180), ("firing", 300)]
    env.close()


def test_active_alert_state_survives_cleanup_and_restart(store: Store) -> None:
    env = Env(store)
    r = rule(duration_seconds=60)
    first = env.engine(r)
    env.run(first, [90, 90])  # pending at 0, firing (notified) at 60
    # it keeps firing, unchanged, for two days of hourly evaluations
    for hour in range(1, 49):
        env.clock.set(T0 + hour * HOUR)
        env.write(90)
        assert first.evaluate() == []
    now = T0 + 48 * HOUR
    _cleanup(store, days=1, now_s=now)
    assert store.series(STATE_METRIC), "cleanup deleted an active alert's state"
    second = env.engine(r)
    (alert,) = second.active_alerts()
    assert alert.state is AlertState.FIRING
    assert env.offset(alert.since_ns) == 0 and env.offset(alert.fired_at_ns) == 60
    env.clock.set(now + 60)
    env.write(90)
    assert second.evaluate() == []  # no re-notification after the restart
    env.clock.set(now + 120)
    env.write(10)
    assert [e.state.value for e in second.evaluate()] == ["resolved"]
    assert env.notes() == [("firing", 60), ("resolved", 48 * HOUR + 120)]
    env.close()


def test_refreshes_are_not_history(store: Store) -> None:
    env = Env(store)
    engine = env.engine(rule(duration_seconds=60))
    env.run(engine, [90, 90])
    for hour in range(1, 4):
        env.clock.set(T0 + hour * HOUR)
        env.write(90)
        engine.evaluate()
    env.clock.set(T0 + 4 * HOUR)
    env.write(10)
    engine.evaluate()
    history = [(h["state"], h["at_ns"] / 1e9 - T0) for h in engine.history(rule="app.high")]
    assert history == [("pending", 0), ("firing", 60), ("inactive", 4 * HOUR)]
    env.close()
