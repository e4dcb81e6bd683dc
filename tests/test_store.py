import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metricskit as mk
from metricskit.model import Series, SeriesKey

T0 = 1_795_046_400


def _write(
    store: mk.Store, name: str, tags: dict[str, str], ts_s: list[float], values: list[float]
) -> None:
    ts = np.array([round(t * 1e9) for t in ts_s], dtype=np.int64)
    store.write([Series(SeriesKey.of(name, tags), ts, np.array(values, dtype=float))])


@pytest.fixture
def store() -> mk.Store:
    return mk.open_store("memory://")


def test_query_by_name_tags_and_time(store: mk.Store) -> None:
    _write(store, "system.cpu.usage_percent", {"host": "a"}, [T0, T0 + 60, T0 + 120], [1, 2, 3])
    _write(store, "system.cpu.usage_percent", {"host": "b"}, [T0], [9])
    got = store.query("system.cpu.usage_percent", start=T0 + 30, end=None, tags={"host": "a"})
    assert len(got) == 1
    assert got[0].name == "system.cpu.usage_percent"
    assert got[0].tags == {"host": "a"}
    assert got[0].values.tolist() == [2, 3]
    start = dt.datetime.fromtimestamp(T0 + 60, tz=dt.timezone.utc)
    assert store.query("system.cpu.usage_percent", start=start, end=start.isoformat())[0:] == []
    assert [s.tags["host"] for s in store.query("system.cpu.usage_percent")] == ["a", "b"]


def test_frame_long_format(store: mk.Store) -> None:
    _write(store, "app.x.y", {"host": "a"}, [T0, T0 + 1], [1, 2])
    _write(store, "app.x.y", {"region": "eu"}, [T0], [3])
    df = store.frame("app.x.y")
    assert list(df.columns) == ["timestamp", "name", "value", "host", "region"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert df["value"].tolist() == [1, 2, 3]
    assert df["host"].tolist()[:2] == ["a", "a"]
    assert pd.isna(df["host"].iloc[2])
    assert df["region"].iloc[2] == "eu"


def test_empty_frame_has_columns(store: mk.Store) -> None:
    df = store.frame("nothing.here.yet")
    assert list(df.columns) == ["timestamp", "name", "value"]
    assert len(df) == 0


def test_series_latest_delete_stats(store: mk.Store) -> None:
    _write(store, "a.b.c", {"k": "1"}, [T0, T0 + 10], [1, 2])
    _write(store, "a.b.d", {}, [T0], [5])
    assert store.series() == [SeriesKey.of("a.b.c", {"k": "1"}), SeriesKey.of("a.b.d")]
    assert store.series("a.b.d") == [SeriesKey.of("a.b.d")]
    latest = store.latest("a.b.c")
    assert latest == [(SeriesKey.of("a.b.c", {"k": "1"}), (T0 + 10) * 10**9, 2.0)]
    assert store.latest("a.b.c", at=T0 + 5)[0][2] == 1.0
    assert store.latest("a.b.c", at=T0 + 100, lookback="1m") == []
    assert store.stats() == {"samples": 3, "series": 2, "bytes": store.stats()["bytes"]}
    assert store.delete(before=T0 + 5) == 2
    assert store.delete("a.b.c") == 1
    assert store.stats()["samples"] == 0


def test_max_records_per_series_keeps_newest() -> None:
    store = mk.open_store("memory://", max_records_per_series=5)
    for i in range(12):
        _write(store, "capped.series.x", {}, [T0 + i], [float(i)])
    _write(store, "capped.series.x", {}, [T0 + 20, T0 + 21, T0 + 22], [20, 21, 22])
    got = store.query("capped.series.x")[0]
    assert got.values.tolist() == [9, 10, 11, 20, 21, 22][-5:]


def test_bad_inputs_are_clear() -> None:
    store = mk.open_store("memory://")
    with pytest.raises(mk.InvalidMetricError, match="invalid metric name"):
        store.query("bad name!")
    with pytest.raises(mk.QueryError, match="after end"):
        store.query("a.b", start=T0 + 10, end=T0)
    with pytest.raises(mk.BackendNotFoundError, match=r"known schemes: .*memory"):
        mk.open_store("nosuch://x")
    with pytest.raises(mk.BackendNotFoundError, match="not a store URL"):
        mk.open_store("metrics.db")
    with pytest.raises(mk.InvalidMetricError):
        store.write(
            [Series(SeriesKey("1bad", mk.Tags()), np.zeros(1, dtype=np.int64), np.zeros(1))]
        )


def test_register_backend_never_clobbers_builtin() -> None:
    from metricskit.storage.memory import MemoryBackend

    with pytest.raises(ValueError, match="already exists"):
        mk.register_backend("sqlite", MemoryBackend)
    mk.register_backend("scratchmem", MemoryBackend)
    assert "scratchmem" in mk.available_schemes()
    assert isinstance(mk.open_store("scratchmem://").backend, MemoryBackend)


def test_register_backend_clobber_really_replaces_a_builtin(tmp_path: Path) -> None:
    """docs/writing-a-backend.md: clobber=True replaces a built-in. Checked in a second
    process, so this one keeps the real sqlite backend."""
    import subprocess
    import sys

    code = f"""
import metricskit as mk
from metricskit.storage.memory import MemoryBackend

class Mine(MemoryBackend):
    scheme = "sqlite"

    @classmethod
    def from_url(cls, url, **options):
        return cls(url)

mk.register_backend("sqlite", Mine, clobber=True)
for url in ("sqlite:///{tmp_path / "x.db"}", "sqlite+pysqlite:///{tmp_path / "y.db"}"):
    print(type(mk.open_store(url).backend).__name__)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Mine", "Mine"]
    assert not (tmp_path / "x.db").exists()
    assert type(mk.open_store(f"sqlite:///{tmp_path / 'z.db'}").backend).__name__ == "SQLBackend"


def test_storage_stats_say_to_dict_like_every_other_type() -> None:
    # docs/conventions.md: a value as plain data is ``to_dict()``; ``as_dict`` survives only
    # as CheckResult's documented deprecated alias
    from metricskit.storage.base import StorageStats

    assert StorageStats(samples=3, series=2, bytes=10).to_dict() == {
        "samples": 3,
        "series": 2,
        "bytes": 10,
    }
    src = Path(mk.__file__).parent
    defining = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if "def as_dict(" in p.read_text()
    )
    assert defining == ["collect/sources/base.py"]
