import datetime as dt

import numpy as np
import pytest

from metricskit import InvalidDurationError, InvalidMetricError, parse_duration, to_ns
from metricskit._time import to_ns_array
from metricskit.model import SeriesKey, Tags, check_value, check_values, validate_name


@pytest.mark.parametrize(
    "name", ["system.cpu.usage_percent", "system.load.1min", "db.status", "x", "_a:b.c_d", "a.b:c"]
)
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("1abc", "invalid"),
        ("a..b", "invalid"),
        ("a.", "invalid"),
        (".a", "invalid"),
        ("a b", "invalid"),
        ("a-b", "invalid"),
        ("x" * 300, "limit"),
        (5, "must be a str"),
    ],
)
def test_bad_names(name: object, why: str) -> None:
    with pytest.raises(InvalidMetricError, match=why):
        validate_name(name)


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"1k": "v"}, "invalid tag key"),
        ({"k-k": "v"}, "invalid tag key"),
        ({"__k": "v"}, "reserved"),
        ({"k": 200}, "str value"),
        ({"k": ""}, "empty value"),
        ({"k": "a\x00"}, "NUL"),
        ({"k": "v" * 2000}, "limit"),
    ],
)
def test_bad_tags_name_the_problem(tags: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidMetricError, match=why) as info:
        SeriesKey.of("app.x.y", tags)  # type: ignore[arg-type]
    assert "app.x.y" in str(info.value)


def test_invalid_metric_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        validate_name("no good")


def test_tags_are_hashable_sorted_mappings() -> None:
    a = Tags({"b": "2", "a": "1"})
    b = Tags(a="1", b="2")
    assert a == b and hash(a) == hash(b)
    assert list(a) == ["a", "b"]
    assert a == {"a": "1", "b": "2"}
    assert SeriesKey.of("m.x", {"b": "2", "a": "1"}) == SeriesKey("m.x", b)
    name, tags = SeriesKey.of("m.x", {"a": "1"})
    assert name == "m.x" and tags["a"] == "1"
    assert str(SeriesKey.of("m.x", {"a": "1"})) == 'm.x{a="1"}'


def test_values() -> None:
    assert check_value(1) == 1.0
    assert check_value(True) == 1.0
    assert check_value(np.float32(2.5)) == 2.5
    assert check_value(float("nan")) != check_value(float("nan"))
    with pytest.raises(InvalidMetricError, match="infinite"):
        check_value(float("inf"))
    assert check_value(float("-inf"), allow_inf=True) == float("-inf")
    with pytest.raises(InvalidMetricError, match="must be a number"):
        check_value("3.5")
    with pytest.raises(InvalidMetricError, match="must be a number"):
        check_value(None)
    with pytest.raises(InvalidMetricError):
        check_values(np.array([1.0, np.inf]))
    with pytest.raises(InvalidMetricError):
        check_values(np.array(["a"]))


def test_times() -> None:
    assert to_ns(1) == 10**9
    assert to_ns(1.5) == 1_500_000_000
    assert to_ns(1732752000.5) == 1732752000_500_000_000
    assert to_ns(dt.datetime(1970, 1, 1, 0, 0, 1)) == 10**9
    aware = dt.datetime(1970, 1, 1, 1, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert to_ns(aware) == 10**9
    assert to_ns(np.datetime64("1970-01-01T00:00:01.000000002")) == 10**9 + 2
    assert to_ns("1970-01-01T00:00:01Z") == 10**9
    assert to_ns_array(np.array([1.5, 2.0])).tolist() == [1_500_000_000, 2_000_000_000]
    assert to_ns_array(np.array(["1970-01-01T00:00:01"], dtype="datetime64[s]")).tolist() == [10**9]
    with pytest.raises(InvalidMetricError):
        to_ns("yesterday")
    with pytest.raises(InvalidMetricError):
        to_ns(float("nan"))


def test_durations() -> None:
    assert parse_duration("30s") == 30 * 10**9
    assert parse_duration("5m") == 300 * 10**9
    assert parse_duration("1h30m") == 5400 * 10**9
    assert parse_duration("1d") == 86400 * 10**9
    assert parse_duration("250ms") == 250 * 10**6
    assert parse_duration(60) == 60 * 10**9
    assert parse_duration("1.5") == 1_500_000_000
    assert parse_duration(dt.timedelta(minutes=2)) == 120 * 10**9
    for bad in ("5x", "", "m5", "-5m", -1, float("nan"), True, None):
        with pytest.raises(InvalidDurationError):
            parse_duration(bad)
