"""Reading a Parquet store lazily, past memory: DuckDB and dask prune by day and metric."""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from metricskit.model import Series, SeriesKey
from tests.services import require_module

DAY0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
DAYS = 4
METRICS = ("system.cpu.usage_percent", "system.memory.usage_percent", "app.health.status")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, mk.Store]:
    root = tmp_path_factory.mktemp("pq") / "store"
    store = mk.open_store(f"parquet://{root}")
    rng = np.random.default_rng(3)
    t0 = int(DAY0.timestamp()) * 10**9
    ts = t0 + np.arange(0, DAYS * 86_400, 60, dtype=np.int64) * 10**9
    for name in METRICS:
        for host in ("a", "b"):
            values = np.round(rng.uniform(0, 100, ts.size), 1)
            store.write([Series(SeriesKey.of(name, {"host": host}), ts, values)])
    store.flush()
    return root, store


def _day(i: int) -> str:
    return (DAY0 + dt.timedelta(days=i)).strftime("%Y-%m-%d")


def _expected(store: mk.Store, name: str, day: int) -> np.ndarray:
    start = DAY0 + dt.timedelta(days=day)
    got = store.query(name, start, start + dt.timedelta(days=1), {"host": "a"})
    return got[0].values


def test_duckdb_reads_one_day_of_one_metric(dataset: tuple[Path, mk.Store]) -> None:
    duckdb = require_module("duckdb")
    root, store = dataset
    query = f"""
        SELECT ts, CASE WHEN value_int IS NULL THEN value ELSE value_int / 10^scale END AS v
        FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)
        WHERE day = '{_day(2)}' AND name = 'system.memory.usage_percent'
          AND json_extract_string(tags, '$.host') = 'a'
        ORDER BY ts
    """
    rows = duckdb.sql(query).fetchnumpy()
    np.testing.assert_array_equal(rows["v"], _expected(store, "system.memory.usage_percent", 2))
    plan = duckdb.sql(f"EXPLAIN ANALYZE {query}").fetchall()[0][1]
    # hive partition pruning: only that day's files are opened
    day_files = len(list((root / f"day={_day(2)}").glob("*.parquet")))
    all_files = len(list(root.glob("day=*/*.parquet")))
    assert f"Scanning Files: {day_files}/{all_files}" in plan, plan


def test_dask_prunes_partitions_and_stays_lazy(dataset: tuple[Path, mk.Store]) -> None:
    dd = require_module("dask.dataframe")
    root, store = dataset
    everything = dd.read_parquet(str(root))
    one_day = dd.read_parquet(
        str(root),
        filters=[("day", "==", _day(1)), ("name", "==", "system.cpu.usage_percent")],
    )
    assert one_day.npartitions < everything.npartitions  # other days' files are never read
    frame = one_day.compute()
    frame = frame[frame["tags"].astype(str).str.contains('"host":"a"')].sort_values("ts")
    values = np.where(
        frame["value_int"].notna(), frame["value_int"] / 10.0 ** frame["scale"], frame["value"]
    )
    np.testing.assert_array_equal(values, _expected(store, "system.cpu.usage_percent", 1))
    # an aggregate over the whole store computes out of core, partition by partition
    per_metric = everything.groupby("name", observed=True)["ts"].count().compute()
    assert per_metric.to_dict() == {m: 2 * DAYS * 1440 for m in METRICS}
