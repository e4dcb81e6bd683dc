"""The parquet:// backend: conformance, concurrency, crash safety, corruption, interop."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.services import require_module

pa = require_module("pyarrow")
pq = require_module("pyarrow.parquet")

from metricskit.errors import BackendError, CorruptDataError  # noqa: E402
from metricskit.model import Selector, Series, SeriesKey  # noqa: E402
from metricskit.storage._parquet_values import encode_values  # noqa: E402
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend  # noqa: E402
from metricskit.storage.parquet import ParquetBackend, root_from_url  # noqa: E402
from metricskit.testing import BackendConformance  # noqa: E402

DAY = 86_400 * 10**9
T0 = 1_795_046_400 * 10**9  # 2026-11-19T00:00:00Z


class TestParquetConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Iterator[Callable[[], StorageBackend]]:
        opened: list[ParquetBackend] = []

        def open_() -> StorageBackend:
            backend = ParquetBackend.from_url(f"parquet://{tmp_path}/data")
            opened.append(backend)
            return backend

        yield open_
        for backend in opened:
            backend.close()


class TestParquetConformanceCompactingEagerly(BackendConformance):
    """The same rules hold when every second file triggers a compaction."""

    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Iterator[Callable[[], StorageBackend]]:
        opened: list[ParquetBackend] = []

        def open_() -> StorageBackend:
            backend = ParquetBackend(
                f"parquet://{tmp_path}/data", max_files_per_partition=2, row_group_size=1000
            )
            opened.append(backend)
            return backend

        yield open_
        for backend in opened:
            backend.close()


def _key(i: int) -> SeriesKey:
    return SeriesKey.of("test.proc.value", {"writer": str(i % 2), "series": f"s{i}"})


def _files(root: Path) -> list[Path]:
    return sorted(root.glob("day=*/*.parquet"))


def _all(backend: StorageBackend, key: SeriesKey) -> Series:
    return backend.read(key, MIN_NS, MAX_NS)


# -- URLs and layout --------------------------------------------------------------------


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert root_from_url(f"parquet://{tmp_path}") == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert root_from_url("parquet://rel/dir") == str(tmp_path / "rel" / "dir")
    with pytest.raises(BackendError, match="not a parquet URL"):
        root_from_url("parquet://")


def test_flush_writes_one_file_per_day_partition(tmp_path: Path) -> None:
    key = SeriesKey.of("test.a.b")
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        ts = T0 + np.arange(0, 2 * DAY, 3600 * 10**9, dtype=np.int64)
        backend.write([Series(key, ts, np.arange(ts.size, dtype=float))])
        assert _files(tmp_path) == []  # buffered until flush
        assert len(_all(backend, key)) == 48
        backend.flush()
        assert [p.parent.name for p in _files(tmp_path)] == ["day=2026-11-19", "day=2026-11-20"]


def test_last_write_wins_across_files_and_compaction(tmp_path: Path) -> None:
    key = SeriesKey.of("test.a.b")
    backend = ParquetBackend(f"parquet://{tmp_path}", max_files_per_partition=100)
    for round_ in range(5):
        ts = T0 + np.arange(10, dtype=np.int64) * 10**9
        backend.write([Series(key, ts[round_:], np.full(10 - round_, float(round_)))])
        backend.flush()
    assert len(_files(tmp_path)) == 5
    expected = [0.0, 1.0, 2.0, 3.0] + [4.0] * 6
    np.testing.assert_array_equal(_all(backend, key).values, expected)
    assert backend.stats().samples == 10
    assert backend.compact() == 4
    assert len(_files(tmp_path)) == 1
    np.testing.assert_array_equal(_all(backend, key).values, expected)
    backend.close()
    reopened = ParquetBackend(f"parquet://{tmp_path}")
    np.testing.assert_array_equal(_all(reopened, key).values, expected)


def test_auto_compaction_bounds_file_count(tmp_path: Path) -> None:
    key = SeriesKey.of("test.a.b")
    backend = ParquetBackend(f"parquet://{tmp_path}", max_files_per_partition=4)
    for i in range(30):
        backend.write([Series(key, np.array([T0 + i * 10**9]), np.array([float(i)]))])
        backend.flush()
        assert len(_files(tmp_path)) <= 4
    np.testing.assert_array_equal(_all(backend, key).values, np.arange(30.0))


def test_retention_drops_whole_days_and_rewrites_the_straddling_one(tmp_path: Path) -> None:
    keys = [SeriesKey.of("test.a.b", {"i": str(i)}) for i in range(3)]
    backend = ParquetBackend(f"parquet://{tmp_path}")
    ts = T0 + np.arange(0, 3 * DAY, 6 * 3600 * 10**9, dtype=np.int64)  # 4 per day, 3 days
    backend.write([Series(k, ts, np.arange(ts.size, dtype=float)) for k in keys])
    backend.flush()
    first_day = _files(tmp_path)[0]
    cutoff = T0 + DAY + 12 * 3600 * 10**9  # noon of day 2
    assert backend.delete_before(cutoff) == 3 * 6
    assert not first_day.parent.exists()
    assert _all(backend, keys[0]).timestamps[0] == cutoff
    # selector: only one series, only in the partitions it touches
    assert backend.delete_before(T0 + 3 * DAY, Selector.of("test.a.b", {"i": "1"})) == 6
    assert [k for k in backend.keys()] == [keys[0], keys[2]]
    assert backend.stats().samples == 12


def test_values_are_stored_as_scaled_ints_when_exact(tmp_path: Path) -> None:
    key = SeriesKey.of("test.a.b")
    values = np.array([1.25, 3.5, np.nan, -0.0, 1e300, 0.1 + 0.2, 7.0])
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write([Series(key, T0 + np.arange(7, dtype=np.int64), values)])
    table = pq.read_table(_files(tmp_path)[0])
    assert table.column("scale").to_pylist() == [2] * 7
    assert table.column("value_int").to_pylist() == [125, 350, None, None, None, None, 700]
    got = _all(ParquetBackend(f"parquet://{tmp_path}"), key).values
    assert got.tobytes() == values.tobytes()  # bit for bit: NaN, -0.0 and 0.30000000000000004


def test_encode_values_picks_one_scale_per_series() -> None:
    v = np.array([1.0, 2.0, 3.0, 0.5, 0.25, 100.0, 1.5, 2.125])
    starts = np.array([0, 3, 5])
    lengths = np.array([3, 2, 3])
    ints, exact, scale = encode_values(v, starts, lengths)
    assert scale.tolist() == [0, 0, 0, 2, 2, 3, 3, 3]
    assert exact.all()
    assert ints.tolist() == [1, 2, 3, 50, 25, 100000, 1500, 2125]


# -- crash safety and corruption ---------------------------------------------------------


def test_leftover_tmp_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    key = SeriesKey.of("test.a.b")
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write([Series(key, np.array([T0]), np.array([1.0]))])
    part = _files(tmp_path)[0].parent
    # What a crash mid-write leaves: half a file under the temp name.
    good = _files(tmp_path)[0].read_bytes()
    (part / ".part-99999999999999999999-00-1-abc.parquet.tmp").write_bytes(good[: len(good) // 2])
    backend = ParquetBackend(f"parquet://{tmp_path}")
    assert _all(backend, key).values.tolist() == [1.0]
    assert list(backend.keys()) == [key]
    import pandas as pd

    assert len(pd.read_parquet(tmp_path)) == 1
    backend.write([Series(key, np.array([T0 + 1]), np.array([2.0]))])
    backend.flush()
    backend.compact()
    assert not list(part.glob(".*.tmp"))


def test_truncated_file_raises_corrupt_naming_it(tmp_path: Path) -> None:
    a, b = SeriesKey.of("test.a.b"), SeriesKey.of("test.a.c")
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write([Series(a, np.array([T0]), np.array([1.0]))])
        backend.write([Series(b, np.array([T0 + 2 * DAY]), np.array([2.0]))])
    victim = _files(tmp_path)[0]
    victim.write_bytes(victim.read_bytes()[:-40])
    backend = ParquetBackend(f"parquet://{tmp_path}")
    with pytest.raises(CorruptDataError, match=str(victim)):
        backend.read(a, MIN_NS, MAX_NS)
    with pytest.raises(CorruptDataError, match=str(victim)):
        backend.last(a, MIN_NS, MAX_NS)
    # keys() answers from the root key snapshot without opening any data file...
    assert set(backend.keys()) == {a, b}
    # ...and, without one, finds the damage when it falls back to the files' footers
    (tmp_path / "_keys.json").unlink()
    backend = ParquetBackend(f"parquet://{tmp_path}")
    with pytest.raises(CorruptDataError, match=str(victim)):
        list(backend.keys())
    # the other partition is still readable
    assert backend.read(b, T0 + DAY, MAX_NS).values.tolist() == [2.0]


# -- two processes ------------------------------------------------------------------------


def _writer(root: str, writer: int, rounds: int, compact: bool) -> None:
    backend = ParquetBackend(f"parquet://{root}", max_files_per_partition=3)
    for r in range(rounds):
        batch = []
        for i in range(writer, 20, 2):
            ts = T0 + (r * 50 + np.arange(50, dtype=np.int64)) * 3600 * 10**9  # spans days
            batch.append(Series(_key(i), ts, ts.astype(float) / 1e9 + i))
        backend.write(batch)
        backend.flush()
        if compact and r % 3 == 0:
            backend.compact()
    backend.close()


@pytest.mark.parametrize("compact", [False, True])
def test_two_processes_write_one_dir(tmp_path: Path, compact: bool) -> None:
    ctx = mp.get_context("spawn")
    rounds = 12
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, rounds, compact)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    backend = ParquetBackend(f"parquet://{tmp_path}")
    assert sorted(backend.keys()) == sorted(_key(i) for i in range(20))
    for i in range(20):
        got = _all(backend, _key(i))
        expected_ts = T0 + np.arange(rounds * 50, dtype=np.int64) * 3600 * 10**9
        np.testing.assert_array_equal(got.timestamps, expected_ts)
        np.testing.assert_array_equal(got.values, expected_ts.astype(float) / 1e9 + i)
    assert backend.stats().samples == 20 * rounds * 50
    backend.compact()
    assert all(len(list(d.glob("*.parquet"))) == 1 for d in tmp_path.glob("day=*"))
    assert backend.stats().samples == 20 * rounds * 50


# -- other readers see the same samples ------------------------------------------------------


@pytest.fixture
def mixed_store(tmp_path: Path) -> tuple[Path, dict[SeriesKey, Series]]:
    rng = np.random.default_rng(5)
    data = {}
    for i in range(6):
        key = SeriesKey.of("test.mixed.value", {"i": str(i), "odd": str(i % 2)})
        ts = T0 + np.sort(rng.choice(3 * DAY // 10**9, 300, replace=False)).astype(np.int64) * 10**9
        vals = np.round(rng.normal(0, 100, ts.size), i)  # scale i decimals
        if i == 5:
            vals[::7] = rng.normal(size=vals[::7].size)  # not decimal: float column
            vals[3] = np.nan
        data[key] = Series(key, ts, vals)
    with ParquetBackend(f"parquet://{tmp_path}", max_files_per_partition=100) as backend:
        keys = list(data)
        backend.write([data[k] for k in keys[:3]])
        backend.flush()
        backend.write([data[k] for k in keys[3:]])
    return tmp_path, data


def _check_frame(rows: list[tuple[str, str, int, float]], data: dict[SeriesKey, Series]) -> None:
    by_key: dict[SeriesKey, list[tuple[int, float]]] = {}
    for name, tags, ts, value in rows:
        by_key.setdefault(SeriesKey.of(name, json.loads(tags)), []).append((ts, value))
    assert set(by_key) == set(data)
    for key, series in data.items():
        got = sorted(by_key[key])
        np.testing.assert_array_equal([t for t, _ in got], series.timestamps)
        got_values = np.array([v for _, v in got])
        assert got_values.tobytes() == series.values.tobytes()


def test_backend_reads_what_it_wrote(mixed_store: tuple[Path, dict[SeriesKey, Series]]) -> None:
    root, data = mixed_store
    backend = ParquetBackend(f"parquet://{root}")
    for key, series in data.items():
        assert _all(backend, key).equals(series)


def test_pandas_reads_the_directory(mixed_store: tuple[Path, dict[SeriesKey, Series]]) -> None:
    import pandas as pd

    root, data = mixed_store
    df = pd.read_parquet(root)
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    value = np.where(df["value_int"].notna(), df["value_int"] / 10.0 ** df["scale"], df["value"])
    ts = df["ts"].astype("int64")
    rows = list(zip(df["name"].astype(str), df["tags"].astype(str), ts, value, strict=True))
    _check_frame(rows, data)
    assert set(df["day"].astype(str)) == {"2026-11-19", "2026-11-20", "2026-11-21"}


def test_pyarrow_dataset_reads_the_directory(
    mixed_store: tuple[Path, dict[SeriesKey, Series]],
) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    root, data = mixed_store
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    value = pc.if_else(
        pc.is_valid(table["value_int"]),
        pc.divide(pc.cast(table["value_int"], pa.float64()), pc.power(10.0, table["scale"])),
        table["value"],
    )
    rows = list(
        zip(
            table["name"].to_pylist(),
            table["tags"].to_pylist(),
            pc.cast(table["ts"], pa.int64()).to_pylist(),
            value.to_pylist(),
            strict=True,
        )
    )
    _check_frame(rows, data)


def test_duckdb_reads_the_directory(mixed_store: tuple[Path, dict[SeriesKey, Series]]) -> None:
    duckdb = require_module("duckdb")
    root, data = mixed_store
    rows = duckdb.sql(
        f"""
        SELECT name, tags, epoch_ns(ts),
               CASE WHEN value_int IS NULL THEN value ELSE value_int / 10^scale END
        FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)
        """
    ).fetchall()
    _check_frame([(n, t, int(ts), float(v)) for n, t, ts, v in rows], data)
    days = duckdb.sql(
        f"SELECT DISTINCT day FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert len(days) == 3


@pytest.mark.parametrize("flush_samples", [1, 10**9])
def test_caller_arrays_may_change_after_write(tmp_path: Path, flush_samples: int) -> None:
    key = SeriesKey.of("test.a.b")
    backend = ParquetBackend(f"parquet://{tmp_path}", flush_samples=flush_samples)
    ts = T0 + np.arange(5, dtype=np.int64)
    values = np.arange(5.0)
    backend.write([Series(key, ts, values)])
    ts[:] = 0
    values[:] = -1.0
    got = _all(backend, key)
    np.testing.assert_array_equal(got.timestamps, T0 + np.arange(5))
    np.testing.assert_array_equal(got.values, np.arange(5.0))
    assert len(_files(tmp_path)) == (1 if flush_samples == 1 else 0)
