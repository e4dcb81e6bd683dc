import datetime as dt
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
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
        ({"k": "bad\ud800"}, "lone surrogate"),
        ({"k": "two\nlines"}, "control character"),
        ({"k": "tab\there"}, "control character"),
        ({"k": "esc\x1b[31m"}, "control character"),
        ({"k": "c1\x85"}, "control character"),
        ({"k": "sep\u2028"}, "control character"),
        ({"k": "   "}, "only whitespace"),
        ({"k" * 129: "v"}, "limit is 128"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64"),
        ({f"k{i}": "v" for i in range(10_000)}, "at most 64"),
    ],
)
def test_bad_tags_name_the_problem(tags: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidMetricError, match=why) as info:
        SeriesKey.of("app.x.y", tags)  # type: ignore[arg-type]
    assert "app.x.y" in str(info.value)


def test_tags_at_the_limits_are_accepted() -> None:
    tags = {f"k{i}": "v" for i in range(64)}
    assert len(SeriesKey.of("app.x.y", tags).tags) == 64
    assert SeriesKey.of("app.x.y", {"k" * 128: " padded value ü 日本 "}).tags


def test_tags_constructor_checks_the_count_too() -> None:
    with pytest.raises(InvalidMetricError, match="at most 64"):
        Tags({f"k{i}": "v" for i in range(65)})
    with pytest.raises(InvalidMetricError, match="surrogate"):
        Tags(k="\udfff")


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/m.db", "parquet:///{tmp}/pq"])
def test_every_backend_rejects_a_lone_surrogate_before_writing(url: str, tmp_path: Path) -> None:
    store = mk.open_store(url.format(tmp=tmp_path))
    with mk.Recorder(store) as rec:
        with pytest.raises(InvalidMetricError, match="surrogate"):
            rec.record("app.x.y", 1.0, tags={"k": "bad\ud800"})
        rec.record("app.x.y", 1.0, tags={"k": "good"})
    with pytest.raises(InvalidMetricError, match="surrogate"):
        store.query("app.x.y", tags={"k": "bad\ud800"})
    assert [str(k) for k in store.series()] == ['app.x.y{k="good"}']
    store.close()


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


def test_huge_ints_and_2d_arrays_are_invalid_values() -> None:
    with pytest.raises(InvalidMetricError, match="too large") as info:
        check_value(10**400)
    assert isinstance(info.value, ValueError)
    assert check_value(10**300) == 1e300
    with pytest.raises(InvalidMetricError, match="too large for int64"):
        check_values([1, 10**400])
    with pytest.raises(InvalidMetricError, match="1-d array, not shape"):
        check_values(np.ones((2, 3)))


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
