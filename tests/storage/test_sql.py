"""The SQL backend on real SQLite files, PostgreSQL and MariaDB (127.0.0.1)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
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
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.storage.registry import open_backend as registry_open_backend
from metricskit.storage.sql import InMemorySQLiteBackend, SQLBackend
from metricskit.storage.sql_schema import Tables
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


def test_nan_inf_and_unicode_round_trip(open_at: OpenBackend, location: str) -> None:
    backend = open_at()
    key = SeriesKey.of("nan.test.x", {"where": "ünïcødé ✓"})
    backend.write([_series(key, [3, 1, 2], [np.nan, 1.0, -0.0])])
    got = backend.read(key, MIN_NS, MAX_NS)
    np.testing.assert_array_equal(got.values, [1.0, -0.0, np.nan])
    assert list(backend.keys()) == [key]
    inf = _series(key, [4], [np.inf])
    if location.startswith("mysql"):
        with pytest.raises(BackendError, match="inf"):
            backend.write([inf])
        assert len(backend.read(key, MIN_NS, MAX_NS)) == 3
    else:
        backend.write([inf])
        assert backend.read(key, MIN_NS, MAX_NS).values[-1] == np.inf


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

        big = [
            Series(SeriesKey.of("full.test.y", {"i": str(i)}), np.arange(2_000), np.ones(2_000))
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
