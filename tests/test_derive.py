"""Derivations evaluated on recorded data with known answers."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from metricskit._time import to_ns
from metricskit.collect.derive import FUNCTIONS, Derivation, local_midnight_ns
from metricskit.collect.sources import BUSINESS_DERIVATIONS, Business
from metricskit.errors import ConfigError
from metricskit.model import Tags
from metricskit.recorder import Recorder
from metricskit.storage.memory import MemoryBackend
from metricskit.store import Store
from metricskit.testing import ManualClock

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int, tz: ZoneInfo = BERLIN) -> int:
    return to_ns(dt.datetime(*args, tzinfo=tz))


@pytest.fixture
def store():
    s = Store(MemoryBackend())
    yield s
    s.close()


def write(store, name, points, tags=None):
    rec = Recorder(store, flush_interval=None)
    for t_ns, value in points:
        rec.record(name, value, tags, np.datetime64(t_ns, "ns"))
    rec.close()


def one(values):
    assert list(values) == [Tags()]
    return values[Tags()]


def test_cost_today_at_the_midnight_edge(store):
    write(
        store,
        "business.ai_cost",
        [
            (at(2026, 3, 9, 23, 59, 59) + 999_999_999, 0.5),  # yesterday's last nanosecond
            (at(2026, 3, 10, 0, 0, 0), 0.015),  # exactly midnight: today
            (at(2026, 3, 10, 0, 0, 10), 0.02),
            (at(2026, 3, 10, 0, 0, 31), 9.0),  # after "now"
        ],
    )
    d = Derivation(
        "business.ai_calls.cost_today", "business.ai_cost", "sum", "today", tz="Europe/Berlin"
    )
    assert one(d.evaluate(store, at(2026, 3, 10, 0, 0, 30))) == pytest.approx(0.035)
    # one nanosecond before midnight it is still yesterday, holding only the 0.5
    assert one(d.evaluate(store, at(2026, 3, 10, 0, 0, 0) - 1)) == pytest.approx(0.5)
    # the same instants seen from UTC fall into one day: 23:00 UTC is not midnight
    utc = Derivation("business.ai_calls.cost_today", "business.ai_cost", "sum", "today", tz="UTC")
    assert one(utc.evaluate(store, at(2026, 3, 10, 0, 0, 30))) == pytest.approx(0.535)


def test_local_midnight_across_dst():
    ny = ZoneInfo("America/New_York")
    # 2026-03-08: clocks jump 02:00 -> 03:00; midnight was still EST (UTC-5)
    noon = at(2026, 3, 8, 12, 0, 0, tz=ny)
    assert local_midnight_ns(noon, "America/New_York") == to_ns(dt.datetime(2026, 3, 8, 5, 0))
    # the next day midnight is EDT (UTC-4)
    next_noon = at(2026, 3, 9, 12, 0, 0, tz=ny)
    assert local_midnight_ns(next_noon, "America/New_York") == to_ns(dt.datetime(2026, 3, 9, 4, 0))


@pytest.fixture
def local_tz():
    old = os.environ.get("TZ")

    def set_tz(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_default_zone_is_the_system_one(local_tz, zone):
    local_tz(zone)
    for now in (
        at(2026, 3, 8, 12, 0, 0, tz=ZoneInfo(zone)),
        at(2026, 10, 4, 1, 30, 0, tz=ZoneInfo(zone)),
    ):
        assert local_midnight_ns(now, None) == local_midnight_ns(now, zone)


def test_group_by_and_tag_filter(store):
    t = at(2026, 3, 10, 12, 0, 0)
    write(store, "business.ai_cost", [(t - 10, 1.0), (t - 5, 2.0)], {"model": "sonnet"})
    write(store, "business.ai_cost", [(t - 7, 4.0)], {"model": "haiku", "team": "a"})
    write(store, "business.ai_cost", [(t - 3, 8.0)], {"team": "a"})
    by = Derivation("x.cost", "business.ai_cost", "sum", "1h", by=["model"])
    assert by.evaluate(store, t) == {
        Tags(model="sonnet"): 3.0,
        Tags(model="haiku"): 4.0,
        Tags(): 8.0,
    }
    only_a = Derivation("x.cost", "business.ai_cost", "sum", "1h", tags={"team": "a"})
    assert one(only_a.evaluate(store, t)) == 12.0


def test_functions_with_known_answers(store):
    t = at(2026, 3, 10, 12, 0, 0)
    s = 1_000_000_000
    write(
        store,
        "m.gauge",
        [(t - 50 * s, 3.0), (t - 40 * s, float("nan")), (t - 30 * s, 5.0)],
        {"w": "1"},
    )
    write(store, "m.gauge", [(t - 20 * s, 10.0)], {"w": "2"})
    write(store, "m.gauge", [(t - 2 * 3600 * s, 100.0)], {"w": "3"})  # outside the window
    expect = {
        "count": 3,
        "sum": 18.0,
        "avg": 6.0,
        "min": 3.0,
        "max": 10.0,
        "last": 15.0,
        "rate": 18.0 / 3600,
        "increase": 2.0,
    }
    assert set(expect) == set(FUNCTIONS)
    for fn, value in expect.items():
        got = one(Derivation("m.out", "m.gauge", fn, "1h").evaluate(store, t))
        assert got == pytest.approx(value), fn


def test_increase_treats_a_drop_as_reset(store):
    t = at(2026, 3, 10, 12, 0, 0)
    write(store, "m.counter", [(t - 40, 10.0), (t - 30, 15.0), (t - 20, 2.0), (t - 10, 6.0)])
    d = Derivation("m.inc", "m.counter", "increase", "1h")
    assert one(d.evaluate(store, t)) == 5.0 + 2.0 + 4.0


def test_window_bounds_are_inclusive_at_both_ends(store):
    t = at(2026, 3, 10, 12, 0, 0)
    hour = 3600 * 1_000_000_000
    write(store, "business.error", [(t - hour - 1, 1.0), (t - hour, 1.0), (t, 1.0), (t + 1, 1.0)])
    d = Derivation("business.errors.rate_per_hour", "business.error", "rate", "1h", scale=3600)
    assert one(d.evaluate(store, t)) == pytest.approx(2.0)


def test_no_data(store):
    t = at(2026, 3, 10, 12, 0, 0)
    assert one(Derivation("a.b", "c.d", "sum", "1h").evaluate(store, t)) == 0.0
    assert one(Derivation("a.b", "c.d", "count", "today").evaluate(store, t)) == 0.0
    assert Derivation("a.b", "c.d", "avg", "1h").evaluate(store, t) == {}
    assert Derivation("a.b", "c.d", "sum", "1h", by="model").evaluate(store, t) == {}
    # a rate over "today" evaluated exactly at midnight has no window to divide by
    midnight = at(2026, 3, 10, 0, 0, 0)
    assert (
        Derivation("a.b", "c.d", "rate", "today", tz="Europe/Berlin").evaluate(store, midnight)
        == {}
    )


def test_business_source_end_to_end(store):
    clock = ManualClock(dt.datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN))
    rec = Recorder(store, clock=clock, flush_interval=None)
    rec.record(
        "business.ai_call",
        1.0,
        {"model": "claude-sonnet"},
        dt.datetime(2026, 3, 9, 23, 30, tzinfo=BERLIN),
    )  # yesterday
    for minutes in (5, 20, 70):  # today, before 10:00
        ts = dt.datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN) - dt.timedelta(minutes=minutes)
        rec.record("business.ai_call", 1.0, {"model": "claude-sonnet"}, ts)
        rec.record("business.ai_cost", 0.015, {"model": "claude-sonnet"}, ts)
        rec.record("business.error", 1.0, {"type": "500", "endpoint": "/api/chat"}, ts)
    stale = dt.datetime(2026, 3, 10, 9, 30, tzinfo=BERLIN)
    rec.record("business.sessions.active", 99.0, {"worker": "old"}, stale)  # 30 min: stale
    rec.record("business.sessions.active", 7.0, {"worker": "1"})
    rec.record("business.sessions.active", 5.0, {"worker": "2"})
    rec.flush()
    src = Business(store, tz="Europe/Berlin", clock=clock)
    got = {s.name: s.value for s in src.collect()}
    assert got == pytest.approx(
        {
            "business.users.active_sessions": 12.0,
            "business.ai_calls.total": 3.0,
            "business.ai_calls.cost_today": 0.045,
            "business.errors.rate_per_hour": 2.0,
        }
    )
    rec.close()


def test_business_metrics_subset_and_extra(store):
    kpi = Derivation("business.signups.today", "business.user_signup", "count", "today")
    src = Business(store, metrics=["business.ai_calls.cost_today"], extra=[kpi])
    assert [d.target for d in src.derivations] == ["business.ai_calls.cost_today", kpi.target]
    with pytest.raises(ValueError, match="cannot produce"):
        Business(store, metrics=["business.nope"])
    with pytest.raises(ValueError, match="more than one"):
        Business(store, extra=[BUSINESS_DERIVATIONS[0]])


def test_from_dict_round_trip():
    d = Derivation.from_dict(
        {
            "target": "a.b",
            "source": "c.d",
            "function": "rate",
            "window": "5m",
            "scale": 3600,
            "by": ["model"],
            "tags": {"env": "prod"},
            "tz": "Europe/Berlin",
        }
    )
    assert d.window_ns == 300 * 1_000_000_000 and d.by == ("model",) and d.scale == 3600.0
    assert Derivation.from_dict(d.to_dict()) == d
    assert (
        Derivation.from_dict(
            {"target": "a.b", "source": "c.d", "function": "sum", "window": "today"}
        ).window_ns
        is None
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target": "a.b", "source": "c.d", "function": "summ"}, "did you mean 'sum'"),
        (
            {"target": "a.b", "source": "c.d", "function": "sum", "windwo": "1h"},
            "unknown key 'windwo' (did you mean 'window'?)",
        ),
        ({"target": "a.b", "function": "sum"}, "missing required key(s) ['source']"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "window": "5x"}, "window"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "window": 0}, "longer than 0"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "tz": "Mars/Base"}, "time zone"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "scale": "x"}, "scale"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "by": ["no-dash"]}, "by"),
        ({"target": "a.b", "source": "a.b", "function": "sum"}, "same metric"),
        ({"target": "1bad", "source": "c.d", "function": "sum"}, "invalid metric name"),
        ({"target": "a.b", "source": "c.d", "function": "sum", "tags": {"k": 1}}, "tags"),
    ],
)
def test_validation_errors_name_the_problem(data, message):
    with pytest.raises(ConfigError) as err:
        Derivation.from_dict(data)
    assert message in str(err.value)
    assert repr(data["target"]) in str(err.value)
