"""The SQL backend on real SQLite files, PostgreSQL and MariaDB (127.0.0.1)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from metricskit.errors import (
    BackendError,
    BackendImportError,
    BackendUnavailableError,
    StorageFullError,
)
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage._sql_schema import Tables, encode_tags, key_hash
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.storage.registry import open_backend as registry_open_backend
from metricskit.storage.sql import InMemorySQLiteBackend, SQLBackend
from metricskit.testing import BackendConformance
from tests.services import MARIADB_URL, POSTGRES_URL, free_port, require_database, require_module

T0 = 1_795_046_400 * 10**9
SECOND = 10**9
OpenBackend = Callable[[], StorageBackend]

HOSTILE = [
    "'; DROP TABLE metricskit_samples; --",
    'say "hi"',
    "back\\slash",
    "100% _sure_",
    "ünïcødé ✓ 日本",
    "a,b=c}{",
]


def _series(key: SeriesKey, ts_s: list[int], values: list[float]) -> Series:
    ts = np.array([T0 + t * SECOND for t in ts_s], dtype=np.int64)
    return Series(key, ts, np.array(values, dtype=np.float64))


def _drop(url: str, prefix: str) -> None:
    engine = sa.create_engine(url)
    try:
        Tables(prefix).metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def prefix() -> str:
    """A table prefix no other test uses, so tests on one server never share data."""
    return f"mk{uuid.uuid4().hex[:10]}_"


def _opener(url: str, prefix: str) -> tuple[OpenBackend, list[SQLBackend]]:
    opened: list[SQLBackend] = []

    def open_() -> StorageBackend:
        backend = SQLBackend.from_url(url, table_prefix=prefix)
        assert isinstance(backend, SQLBackend)
        opened.append(backend)
        return backend

    return open_, opened


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def location(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Iterator[str]:
    """A URL of each database kind (servers skip when unreachable); tables dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/metrics.db"
        return
    url = require_database(POSTGRES_URL if request.param == "postgresql" else MARIADB_URL)
    yield url
    _drop(url, prefix)


@pytest.fixture
def open_at(location: str, prefix: str) -> Iterator[OpenBackend]:
    """Opens backends on ``location``, closing them all afterwards."""
    open_, opened = _opener(location, prefix)
    yield open_
    for backend in opened:
        backend.close()


class TestSQLiteConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Iterator[OpenBackend]:
        open_, opened = _opener(f"sqlite:///{tmp_path}/sub/dir/metrics.db", "metricskit_")
        yield open_
        for backend in opened:
            backend.close()


class TestSQLiteInMemoryConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self) -> Iterator[OpenBackend]:
        open_, opened = _opener("sqlite://", "metricskit_")
        yield open_
        for backend in opened:
            backend.close()


class TestPostgresConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, prefix: str) -> Iterator[OpenBackend]:
        url = require_database(POSTGRES_URL)
        open_, opened = _opener(url, prefix)
        yield open_
        for backend in opened:
            backend.close()
        _drop(url, prefix)


class TestMariaDBConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, prefix: str) -> Iterator[OpenBackend]:
        url = require_database(MARIADB_URL)
        open_, opened = _opener(url, prefix)
        yield open_
        for backend in opened:
            backend.close()
        _drop(url, prefix)


# -- URLs and capabilities ------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_not_persistent(url: str) -> None:
    with SQLBackend.from_url(url) as backend:
        assert isinstance(backend, InMemorySQLiteBackend)
        assert not backend.capabilities.persistent
        key = SeriesKey.of("mem.test.x")
        backend.write([_series(key, [1, 2], [1.0, 2.0])])
        assert len(backend.read(key, MIN_NS, MAX_NS)) == 2


def test_file_sqlite_capabilities_and_registry(tmp_path: Path) -> None:
    backend = registry_open_backend(f"sqlite:///{tmp_path}/m.db")
    try:
        assert type(backend) is SQLBackend
        caps = backend.capabilities
        assert caps.persistent and caps.deletes and caps.multiprocess
    finally:
        backend.close()


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLBackend.from_url(f"sqlite:///{path}") as backend:
        backend.write([_series(SeriesKey.of("wal.test.x"), [1], [1.0])])
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            table_sql = raw.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'metricskit_samples'"
            ).fetchone()[0]
    assert "WITHOUT ROWID" in table_sql


def test_invalid_prefix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="table prefix"):
        SQLBackend.from_url(f"sqlite:///{tmp_path}/m.db", table_prefix="x; DROP TABLE y")


def test_prefixes_keep_stores_apart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    key = SeriesKey.of("prefix.test.x")
    with (
        SQLBackend.from_url(url, table_prefix="one_") as one,
        SQLBackend.from_url(url, table_prefix="two_") as two,
    ):
        one.write([_series(key, [1], [1.0])])
        assert list(one.keys()) == [key]
        assert list(two.keys()) == []


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLBackend.from_url(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE metricskit_meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(BackendError, match="schema version 99"):
        SQLBackend.from_url(f"sqlite:///{path}")


# -- values, tags and filters on every database ---------------------------------------


def test_nan_inf_and_unicode_round_trip(open_at: OpenBackend) -> None:
    """Every database keeps NaN, -0.0 and +-inf bit for bit (MariaDB's DOUBLE too: such
    values go to blocks, never to a head row)."""
    backend = open_at()
    key = SeriesKey.of("nan.test.x", {"where": "ünïcødé ✓"})
    backend.write([_series(key, [3, 1, 2], [np.nan, 1.0, -0.0])])
    got = backend.read(key, MIN_NS, MAX_NS)
    np.testing.assert_array_equal(got.values, [1.0, -0.0, np.nan])
    assert np.signbit(got.values[1])
    assert list(backend.keys()) == [key]
    backend.write([_series(key, [4, 5], [np.inf, -np.inf])])
    backend.write([_series(key, [6], [2.5])])
    got = backend.read(key, MIN_NS, MAX_NS)
    expected = np.array([1.0, -0.0, np.nan, np.inf, -np.inf, 2.5])
    assert got.values.view(np.int64).tolist() == expected.view(np.int64).tolist()


def test_hostile_tags_are_bound_and_filter_exactly(open_at: OpenBackend) -> None:
    backend = open_at()
    keys = [SeriesKey.of("hostile.test.x", {"v": value}) for value in HOSTILE]
    backend.write([_series(key, [1, 2], [float(i), 0.5]) for i, key in enumerate(keys)])
    assert sorted(backend.keys()) == sorted(keys)
    for i, key in enumerate(keys):
        assert list(backend.select(Selector.of(tags={"v": key.tags["v"]}))) == [key]
        assert backend.read(key, MIN_NS, MAX_NS).values[0] == float(i)
    # LIKE wildcards in a value are literal: "100% _sure_" matches only itself.
    assert list(backend.select(Selector.of(tags={"v": "%"}))) == []
    assert backend.stats().samples == 2 * len(HOSTILE)


def test_tag_filters_need_every_tag(open_at: OpenBackend) -> None:
    backend = open_at()
    a = SeriesKey.of("filter.test.x", {"host": "a", "dc": "eu"})
    b = SeriesKey.of("filter.test.x", {"host": "a"})
    c = SeriesKey.of("filter.test.y", {"host": "ab"})
    backend.write([_series(k, [1], [1.0]) for k in (a, b, c)])
    assert sorted(backend.select(Selector.of(tags={"host": "a"}))) == [a, b]
    assert list(backend.select(Selector.of(tags={"host": "a"}, exact=True))) == [b]
    assert list(backend.select(Selector.of("filter.test.y"))) == [c]
    got = list(backend.query(Selector.of("filter.test.x"), MIN_NS, MAX_NS))
    assert [s.key for s in got] == [a, b]  # key order: tags ("dc", ...) < ("host", ...)


def test_delete_elsewhere_then_write_again(open_at: OpenBackend) -> None:
    """A series deleted by another connection is recreated, not written to a dead id."""
    writer, deleter = open_at(), open_at()
    key = SeriesKey.of("recreate.test.x")
    writer.write([_series(key, [1, 2], [1.0, 2.0])])
    assert deleter.delete_before(MAX_NS) == 2
    assert list(writer.keys()) == []
    writer.write([_series(key, [3], [3.0])])
    assert list(deleter.keys()) == [key]
    np.testing.assert_array_equal(deleter.read(key, MIN_NS, MAX_NS).values, [3.0])


def test_query_spans_many_statements(open_at: OpenBackend) -> None:
    backend = open_at()
    keys = [SeriesKey.of("many.test.x", {"i": f"{i:04d}"}) for i in range(1_100)]
    backend.write([_series(k, [i % 7, 10], [float(i), -1.0]) for i, k in enumerate(keys)])
    got = list(backend.query(Selector.of("many.test.x"), T0, T0 + 10 * SECOND))
    assert [s.key for s in got] == keys
    assert all(s.values[0] == float(i) and len(s) == 1 for i, s in enumerate(got))


# -- failures ---------------------------------------------------------------------------


def test_closed_port_is_unavailable_without_password() -> None:
    port = free_port()
    url = f"postgresql://metrics:s3cr3t-pw@127.0.0.1:{port}/test"
    with pytest.raises(BackendUnavailableError) as info:
        SQLBackend.from_url(url)
    assert "s3cr3t-pw" not in str(info.value)
    assert f"metrics:***@127.0.0.1:{port}" in str(info.value)


def test_mariadb_wrong_password_is_unavailable_without_password() -> None:
    url = require_database(MARIADB_URL)
    bad = sa.make_url(url).set(password="wr0ng-passw0rd")
    with pytest.raises(BackendUnavailableError) as info:
        SQLBackend.from_url(bad.render_as_string(hide_password=False))
    message = str(info.value)
    assert "wr0ng-passw0rd" not in message
    assert "Access denied" in message


def test_repr_hides_password(prefix: str) -> None:
    url = require_database(POSTGRES_URL)
    # Trust authentication ignores the password, so the connection succeeds.
    with_password = sa.make_url(url).set(password="hunter2-secret")
    backend = SQLBackend.from_url(
        with_password.render_as_string(hide_password=False), table_prefix=prefix
    )
    try:
        assert "hunter2-secret" not in repr(backend)
        assert "hunter2-secret" not in backend.url
    finally:
        backend.close()
        _drop(url, prefix)


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # MySQLdb (mysqlclient) is a driver metricskit does not install; a None entry makes
    # importing it fail here even where it happens to be installed
    require_module("sqlalchemy.dialects.mysql.mysqldb")
    monkeypatch.setitem(sys.modules, "MySQLdb", None)
    with pytest.raises(BackendImportError, match=r"pip install 'metricskit\[sql\]'"):
        SQLBackend.from_url("mysql+mysqldb://root@127.0.0.1:3306/test")


def test_unreachable_sqlite_file() -> None:
    with pytest.raises(BackendUnavailableError, match="/proc/"):
        SQLBackend.from_url("sqlite:////proc/metricskit-no-such-dir/m.db")


def test_full_disk_rolls_back_and_retry_succeeds(tmp_path: Path) -> None:
    """SQLite's max_page_count is a real quota: the write fails whole, then succeeds."""
    path = tmp_path / "m.db"
    backend = SQLBackend.from_url(f"sqlite:///{path}")
    try:
        first = SeriesKey.of("full.test.x")
        backend.write([_series(first, [1, 2], [1.0, 2.0])])
        engine: sa.Engine = backend._engine  # the quota is a per-connection pragma
        engine.dispose()
        with sqlite3.connect(path) as raw:
            pages = raw.execute("PRAGMA page_count").fetchone()[0] + 2

        @sa.event.listens_for(engine, "connect")
        def _quota(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

        # Random values: blocks compress constant ones into a few bytes, far under the quota.
        noise = np.random.default_rng(3).normal(size=(20, 2_000))
        big = [
            Series(SeriesKey.of("full.test.y", {"i": str(i)}), np.arange(2_000), noise[i])
            for i in range(20)
        ]
        with pytest.raises(StorageFullError):
            backend.write([_series(first, [3], [3.0]), *big])
        assert backend.stats().samples == 2
        assert list(backend.keys()) == [first]

        sa.event.remove(engine, "connect", _quota)
        engine.dispose()
        backend.write([_series(first, [3], [3.0]), *big])
        assert backend.stats().samples == 3 + 20 * 2_000
        assert len(list(backend.keys())) == 21
    finally:
        backend.close()


# -- two processes on one store ----------------------------------------------------


def _write_in_process(url: str, prefix: str, worker: int, samples: int, batch: int) -> None:
    backend = SQLBackend.from_url(url, table_prefix=prefix)
    try:
        keys = [SeriesKey.of("mp.test.x", {"s": str(i)}) for i in range(10)]
        for start in range(0, samples, batch):
            i = np.arange(start, min(start + batch, samples))
            # Both workers write every series; their timestamps interleave (even/odd).
            backend.write(
                [
                    Series(key, (i * 2 + worker).astype(np.int64), (worker * 1e6 + i).astype(float))
                    for key in keys[(start // batch) % 2 :: 2]
                ]
            )
    finally:
        backend.close()


def test_two_processes_write_one_store(location: str, prefix: str) -> None:
    """Two writer processes on one SQLite file (or one server), sharing every series."""
    url = location
    SQLBackend.from_url(url, table_prefix=prefix).close()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_write_in_process, args=(url, prefix, worker, 4_000, 40))
        for worker in (0, 1)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
        assert proc.exitcode == 0
    with SQLBackend.from_url(url, table_prefix=prefix) as backend:
        # Each worker wrote 4,000 timestamps into 5 of the 10 series per batch, alternating
        # halves: 2 workers x 4,000 x 5 = 40,000 samples.
        assert backend.stats().samples == 40_000
        assert backend.stats().series == 10
        for s in backend.query(Selector.of("mp.test.x"), MIN_NS, MAX_NS):
            worker = s.timestamps % 2
            i = s.timestamps // 2
            np.testing.assert_array_equal(s.values, worker * 1e6 + i)
            assert len(s) == 4_000


# -- the block layout: migration from schema 1, file identity ---------------------------

FIXTURE_V1 = Path(__file__).parent / "data" / "sqlite_v1.db"


def _fixture_v1_expected() -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
    """What data/make_sqlite_v1.py wrote (same seeds)."""
    ts = T0 + np.arange(3000, dtype=np.int64) * 10**10
    gauge = np.round(np.cumsum(np.random.default_rng(1).normal(0, 0.5, 3000)) + 50, 2)
    counter = np.cumsum(np.random.default_rng(2).integers(0, 100, 3000)).astype(float)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 0.1 + 0.2, 1e-300, 5e-324, 2.0**53 + 2])
    return {
        SeriesKey.of("fixture.gauge", {"host": "a"}): (ts, gauge),
        SeriesKey.of("fixture.counter_total", {"host": "a", "job": "x"}): (ts, counter),
        SeriesKey.of("fixture.special"): (T0 + np.arange(8, dtype=np.int64), special),
    }


def _assert_holds(backend: SQLBackend, expected: dict[SeriesKey, tuple[np.ndarray, np.ndarray]]):
    assert sorted(backend.keys()) == sorted(expected)
    for key, (ts, values) in expected.items():
        got = backend.read(key, MIN_NS, MAX_NS)
        np.testing.assert_array_equal(got.timestamps, ts)
        # NaN came back from a SQL NULL in schema 1, so compare NaN as NaN, the rest bitwise.
        nan = np.isnan(values)
        assert np.array_equal(np.isnan(got.values), nan)
        assert got.values[~nan].view(np.int64).tolist() == values[~nan].view(np.int64).tolist()


def _migrate_in_process(path: str) -> None:
    SQLBackend.from_url(f"sqlite:///{path}").close()


def test_schema_1_file_is_migrated_on_open(tmp_path: Path) -> None:
    """A store file written by metricskit 0.1 (row per sample) opens, upgraded to blocks."""
    path = tmp_path / "old.db"
    path.write_bytes(FIXTURE_V1.read_bytes())
    expected = _fixture_v1_expected()
    # The -0.0 of schema 1 came back as +0.0 (SQLite stores an integral REAL as 0).
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM metricskit_meta WHERE key = 'schema_version'")
        old_rows = raw.execute("SELECT COUNT(*) FROM metricskit_samples").fetchone()[0]
    assert old_rows == 6008
    expected[SeriesKey.of("fixture.special")][1][1] = 0.0
    # A second process migrates it (what an upgraded CLI or service does first).
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_migrate_in_process, args=(str(path),))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 0
    with sqlite3.connect(path) as raw:
        assert raw.execute(
            "SELECT value FROM metricskit_meta WHERE key = 'schema_version'"
        ).fetchone() == (2,)
        assert raw.execute("SELECT COUNT(*) FROM metricskit_samples").fetchone() == (0,)
        blocks = raw.execute("SELECT COUNT(*), SUM(n) FROM metricskit_blocks").fetchone()
        assert blocks == (3, 6008)
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for _ in range(2):  # and again after a restart
        with SQLBackend.from_url(f"sqlite:///{path}") as backend:
            _assert_holds(backend, expected)
            assert backend.stats().samples == 6008


def test_schema_1_tables_are_migrated(location: str, prefix: str) -> None:
    """The old DDL (no blocks table, version 1) on every database: rows become blocks."""
    tables = Tables(prefix)
    engine = sa.create_engine(location)
    key = SeriesKey.of("old.layout.x", {"host": "a"})
    ts = T0 + np.arange(700, dtype=np.int64) * SECOND
    values = np.round(np.linspace(0, 70, 700), 2)
    try:
        with engine.begin() as conn:
            tables.metadata.create_all(conn, tables=[tables.meta, tables.series, tables.samples])
            conn.execute(
                sa.insert(tables.meta),
                [{"key": "schema_version", "value": 1}, {"key": "generation", "value": 0}],
            )
            conn.execute(
                sa.insert(tables.series),
                {"key_hash": key_hash(key.name, encode_tags(key.tags)), "name": key.name,
                 "tags": encode_tags(key.tags)},
            )  # fmt: skip
            series_id = conn.execute(sa.select(tables.series.c.id)).scalar_one()
            conn.execute(
                sa.insert(tables.samples),
                [{"series_id": series_id, "ts": int(t), "value": float(v)}
                 for t, v in zip(ts, values, strict=True)],
            )  # fmt: skip
    finally:
        engine.dispose()
    with SQLBackend.from_url(location, table_prefix=prefix) as backend:
        got = backend.read(key, MIN_NS, MAX_NS)
        np.testing.assert_array_equal(got.timestamps, ts)
        np.testing.assert_array_equal(got.values, values)
        with backend._transaction("test") as conn:
            version = conn.execute(
                sa.select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
            ).scalar_one()
            head = conn.execute(sa.select(sa.func.count()).select_from(tables.samples))
            assert (version, head.scalar_one()) == (2, 0)
    with SQLBackend.from_url(location, table_prefix=prefix) as backend:
        assert backend.stats().samples == 700


def test_deleted_file_is_reported_not_lost(tmp_path: Path) -> None:
    """SQLite writes on into an unlinked file: write and flush must say so."""
    path = tmp_path / "m.db"
    key = SeriesKey.of("gone.test.x")
    backend = SQLBackend.from_url(f"sqlite:///{path}")
    try:
        backend.write([_series(key, [1], [1.0])])
        backend.flush()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(BackendError, match="deleted or replaced"):
            backend.flush()
        with pytest.raises(BackendError, match="deleted or replaced"):
            backend.write([_series(key, [2], [2.0])])
    finally:
        backend.close()


def test_replaced_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLBackend.from_url(f"sqlite:///{path}") as backend:
        backend.write([_series(SeriesKey.of("swap.test.x"), [1], [1.0])])
        other = tmp_path / "other.db"
        SQLBackend.from_url(f"sqlite:///{other}").close()
        other.replace(path)
        with pytest.raises(BackendError, match="deleted or replaced"):
            backend.flush()


# -- crash safety: SIGKILL a writer mid-write --------------------------------------------

CRASH_SERIES = [SeriesKey.of("crash.test.x", {"s": str(i)}) for i in range(3)]


def _crash_step(step: int) -> list[Series]:
    """The batch of step ``step``: big appends (blocks), small appends (head rows), and
    rewrites of old samples (block rewrites), in turn; values say which step wrote them."""
    kind = step % 3
    base = (step // 3) * 3_000
    if kind == 0:
        idx = base + np.arange(3_000)
    elif kind == 1:
        idx = base + 3_000 + np.arange(40)
    else:
        idx = np.random.default_rng(step).integers(0, max(base, 1), 60)
    ts = T0 + np.unique(idx).astype(np.int64) * SECOND
    return [Series(key, ts, np.full(ts.size, step + i / 10)) for i, key in enumerate(CRASH_SERIES)]


def _crash_model(steps: int) -> dict[SeriesKey, dict[int, float]]:
    model: dict[SeriesKey, dict[int, float]] = {key: {} for key in CRASH_SERIES}
    for step in range(steps):
        for s in _crash_step(step):
            model[s.key].update(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
    return model


def crash_writer(url: str, prefix: str) -> None:
    """Run in a child process: write step after step, printing each step once flushed."""
    backend = SQLBackend.from_url(url, table_prefix=prefix)
    step = 0
    while True:
        backend.write(_crash_step(step))
        backend.flush()
        print(step, flush=True)
        step += 1


def _store_state(backend: SQLBackend) -> dict[SeriesKey, dict[int, float]]:
    out: dict[SeriesKey, dict[int, float]] = {key: {} for key in CRASH_SERIES}
    for key in CRASH_SERIES:
        s = backend.read(key, MIN_NS, MAX_NS)
        out[key] = dict(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_sigkill_mid_write_loses_nothing_flushed(kind: str, tmp_path: Path) -> None:
    """20 times: kill -9 a writer while it writes; the store opens (SQLite: integrity_check
    ok) and holds exactly every step whose flush returned, plus at most the one in flight."""
    rng = np.random.default_rng(2024)
    root = Path(__file__).parents[2]
    server = (
        None
        if kind == "sqlite"
        else require_database(POSTGRES_URL if kind == "postgresql" else MARIADB_URL)
    )
    for attempt in range(20):
        prefix = f"crash{uuid.uuid4().hex[:8]}_"
        url = server or f"sqlite:///{tmp_path}/crash{attempt}.db"
        acks_wanted = int(rng.integers(1, 6))
        code = (
            "import sys; from tests.storage.test_sql import crash_writer; "
            "crash_writer(sys.argv[1], sys.argv[2])"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, url, prefix],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        acked = -1
        try:
            assert proc.stdout is not None
            while acked + 1 < acks_wanted:
                line = proc.stdout.readline()
                assert line, f"writer exited early (code {proc.wait()})"
                acked = int(line)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if server is None:
            with sqlite3.connect(f"{tmp_path}/crash{attempt}.db") as raw:
                assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        try:
            with SQLBackend.from_url(url, table_prefix=prefix) as backend:
                state = _store_state(backend)
        finally:
            if server is not None:
                _drop(server, prefix)
        # Every acknowledged step is there; the step in flight is there whole or not at all.
        assert state in (_crash_model(acked + 1), _crash_model(acked + 2)), attempt


def _big_batch(name: str) -> list[Series]:
    ts = T0 + np.arange(5_000, dtype=np.int64) * SECOND
    return [Series(SeriesKey.of(name, {"i": str(i)}), ts, np.full(5_000, i / 4)) for i in range(8)]


def _write_big_in_child(url: str) -> None:
    with SQLBackend.from_url(url) as backend:
        backend.write(_big_batch("fork.test.child"))


def test_forked_child_encodes_blocks(tmp_path: Path) -> None:
    """Blocks are encoded on a thread pool; a forked child must get its own, not hang."""
    url = f"sqlite:///{tmp_path}/m.db"
    with SQLBackend.from_url(url) as backend:
        backend.write(_big_batch("fork.test.parent"))  # the parent's pool now exists
    proc = mp.get_context("fork").Process(target=_write_big_in_child, args=(url,))
    proc.start()
    proc.join(timeout=120)
    if proc.is_alive():
        proc.kill()
    assert proc.exitcode == 0
    with SQLBackend.from_url(url) as backend:
        assert backend.stats().samples == 2 * 8 * 5_000


def test_relative_file_survives_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The identity check follows the file the driver opened, not the current directory."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with SQLBackend.from_url("sqlite:///rel.db") as backend:
        monkeypatch.chdir(tmp_path)
        backend.write([_series(SeriesKey.of("chdir.test.x"), [1], [1.0])])
        backend.flush()
    assert (tmp_path / "a" / "rel.db").exists()


def test_reads_and_last_decode_only_the_blocks_they_need(
    open_at: OpenBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40,000 samples = 10 blocks: last() decodes one, a short range the ones it overlaps."""
    import metricskit.storage._chunk_codec as codec_module

    backend = open_at()
    key = SeriesKey.of("bounded.test.x")
    ts = T0 + np.arange(40_000, dtype=np.int64) * SECOND
    backend.write([Series(key, ts, np.arange(40_000, dtype=np.float64))])
    decoded: list[int] = []

    def counting(blob: memoryview, ts: np.ndarray | None, values: np.ndarray) -> None:
        real(blob, ts, values)
        decoded.append(len(values))

    real = codec_module._decode  # every decoding path decodes each block through it
    monkeypatch.setattr(codec_module, "_decode", counting)
    assert backend.last(key, MIN_NS, MAX_NS) == (int(ts[-1]), 39_999.0)
    assert backend.last(key, MIN_NS, int(ts[5_000])) == (int(ts[4_999]), 4_999.0)
    assert len(decoded) == 2
    decoded.clear()
    got = backend.read(key, int(ts[4_000]), int(ts[4_200]))
    assert got.values.tolist() == list(map(float, range(4_000, 4_200)))
    assert len(decoded) == 2  # the blocks of samples 0-4,095 and 4,096-8,191
    decoded.clear()
    assert backend.count(key, int(ts[10_000]), int(ts[10_001])) == 1
    assert len(decoded) == 1
