"""The SQL storage backend: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy Core.

URLs::

    sqlite:///path/metrics.db                   a file (the library's default store)
    sqlite://   or   sqlite:///:memory:         in memory, gone when closed
    postgresql://user@host:5432/db              psycopg 3 (also postgresql+psycopg://)
    mysql://root@host:3306/db                   PyMySQL (also mariadb://, mysql+pymysql://)

Options: ``table_prefix`` (default ``"metricskit_"``), ``busy_timeout`` (SQLite, seconds,
default 30) and ``engine_options`` (passed to ``sqlalchemy.create_engine``).

The layout is described in :mod:`metricskit.storage.sql_schema`. Each ``write`` is one
transaction (an ``IMMEDIATE`` one on SQLite), so a failed write leaves the store as it was
and the same batch can be retried. On SQLite, WAL mode with ``synchronous=NORMAL`` makes a
returned write survive a crash of the process, and several processes may write one file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.schema import CreateIndex, CreateTable

from metricskit.errors import BackendError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, Capabilities, StorageBackend, StorageStats
from metricskit.storage.sql_errors import parse_url, safe_url, translate
from metricskit.storage.sql_flavors import WRITE_OPTION, flavor_for, insert_ignore, normalize_url
from metricskit.storage.sql_schema import (
    DEFAULT_PREFIX,
    SCHEMA_VERSION,
    Tables,
    decode_key,
    encode_tag_filter,
    encode_tags,
    key_hash,
)

__all__ = ["InMemorySQLiteBackend", "SQLBackend"]

_CHUNK = 500  # ids per IN (...) list: far below every database's parameter limit
_GENERATION = "generation"


def _hash_of(key: SeriesKey) -> str:
    return key_hash(key.name, encode_tags(key.tags))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _columns(rows: Sequence[Sequence[Any]], first: int) -> list[np.ndarray[Any, Any]]:
    """Columns of fetched rows: ``first`` int64 columns then a float64 one (NULL -> NaN).

    A list comprehension per column measured faster than ``zip(*rows)`` or a structured
    ``np.array(rows, dtype=...)`` on 10,000 rows.
    """
    ints = [np.array([row[i] for row in rows], dtype=np.int64) for i in range(first)]
    return [*ints, np.array([row[first] for row in rows], dtype=np.float64)]


def _last_wins(
    sid: np.ndarray[Any, Any], ts: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Sort by (series, ts) and keep the last occurrence of each pair.

    lexsort is stable, so equal pairs stay in arrival order. Sorting also gives the
    database B-tree locality: each series' samples go in as one ascending run.
    """
    order = np.lexsort((ts, sid))
    sid, ts, values = sid[order], ts[order], values[order]
    if len(sid) > 1:
        keep = np.empty(len(sid), dtype=bool)
        keep[-1] = True
        np.logical_or(sid[1:] != sid[:-1], ts[1:] != ts[:-1], out=keep[:-1])
        if not keep.all():
            sid, ts, values = sid[keep], ts[keep], values[keep]
    return sid, ts, values


class SQLBackend(StorageBackend):
    """Stores series in SQL tables; see the module docstring for URLs and options."""

    scheme = "sqlite"
    schemes = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
    """Every URL scheme this class serves (with or without a ``+driver`` suffix)."""
    capabilities = Capabilities(persistent=True, deletes=True, multiprocess=True)

    def __new__(cls, url: str, **options: Any) -> SQLBackend:
        """Build an :class:`InMemorySQLiteBackend` for an in-memory SQLite URL."""
        if cls is SQLBackend and _is_memory_sqlite(url):
            cls = InMemorySQLiteBackend
        return super().__new__(cls)

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = DEFAULT_PREFIX,
        busy_timeout: float = 30.0,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self._url = normalize_url(parse_url(url))
        self._tables = Tables(table_prefix)
        self._flavor = flavor_for(self._url, self._tables, busy_timeout)
        self._closed = False
        # One shared SQLite connection (in memory) must not be used by two threads at once.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self._flavor.memory else contextlib.nullcontext()
        )
        self._write_lock = threading.Lock()
        self._ids: dict[SeriesKey, int] = {}
        self._generation: int | None = None
        try:
            options = {**self._flavor.engine_options(), **(engine_options or {})}
            self._engine = sa.create_engine(self._url, **options)
        except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
            raise translate(exc, self._url, "open", connecting=isinstance(exc, OSError)) from exc
        self._flavor.install(self._engine)
        try:
            self._create_schema()
        except BaseException:
            self._engine.dispose()
            raise
        self._flavor.prepare(self._engine)
        self._compile_reads()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({safe_url(self._url)!r})"

    @property
    def url(self) -> str:
        """The store's URL with the password hidden."""
        return safe_url(self._url)

    # -- connections and transactions ------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
            raise translate(exc, self._url, what) from exc
        except Exception as exc:
            if isinstance(exc, self._engine.dialect.loaded_dbapi.Error):
                raise translate(exc, self._url, what) from exc
            raise

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[sa.Connection]:
        if self._closed:
            raise BackendError(f"{what} on {self.url}: the backend is closed")
        with self._lock:
            try:
                conn = self._engine.connect()
            except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
                raise translate(exc, self._url, what, connecting=True) from exc
            with self._guard(what), conn:
                yield conn

    @contextlib.contextmanager
    def _transaction(self, what: str, *, write: bool = False) -> Iterator[sa.Connection]:
        with self._connection(what) as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _cursor(self, what: str) -> Iterator[Any]:
        """A raw DBAPI cursor for single-statement reads (no per-row SQLAlchemy objects)."""
        with self._connection(what) as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                yield cur
            finally:
                cur.close()

    def _create_schema(self) -> None:
        t = self._tables
        # Two processes may create the tables at once; IF NOT EXISTS makes the second a
        # no-op, and a race inside the catalog (PostgreSQL) is settled by one retry.
        for attempt in (1, 2):
            try:
                with self._transaction("open", write=True) as conn:
                    for table in (t.meta, t.series, t.samples):
                        conn.execute(CreateTable(table, if_not_exists=True))
                    for index in t.series.indexes:
                        conn.execute(CreateIndex(index, if_not_exists=True))
                    conn.execute(
                        insert_ignore(self._engine.dialect.name, t.meta, "key"),
                        [{"key": "schema_version", "value": SCHEMA_VERSION},
                         {"key": _GENERATION, "value": 0}],
                    )  # fmt: skip
                    version = conn.execute(
                        sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")
                    ).scalar_one()
                break
            except BackendError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, sa_exc.IntegrityError):
                    raise
        if version > SCHEMA_VERSION:
            raise BackendError(
                f"{self.url}: tables {t.prefix}* have schema version {version}, newer than "
                f"this metricskit understands ({SCHEMA_VERSION}); upgrade metricskit"
            )

    def _compile_reads(self) -> None:
        t = self._tables
        series_id = (
            sa.select(t.series.c.id).where(t.series.c.key_hash == sa.bindparam("h"))
        ).scalar_subquery()
        in_range = (
            t.samples.c.series_id == series_id,
            t.samples.c.ts >= sa.bindparam("start"),
            t.samples.c.ts < sa.bindparam("end"),
        )
        read = sa.select(t.samples.c.ts, t.samples.c.value).where(*in_range)
        self._sql_read = self._flavor.compile(self._engine, read.order_by(t.samples.c.ts))
        count = sa.select(sa.func.count()).select_from(t.samples).where(*in_range)
        self._sql_count = self._flavor.compile(self._engine, count)

    # -- writing ------------------------------------------------------------------------

    def _check_generation(self, conn: sa.Connection, *, exclusive: bool = False) -> None:
        """Drop cached series ids if another process deleted series since we cached them.

        The row lock (shared for writers, exclusive for deleters; SQLite's IMMEDIATE
        transaction covers both) keeps a delete from slipping in before our commit.
        """
        meta = self._tables.meta
        stmt = sa.select(meta.c.value).where(meta.c.key == _GENERATION)
        generation = conn.execute(stmt.with_for_update(read=not exclusive)).scalar_one()
        if generation != self._generation:
            self._ids.clear()
            self._generation = generation

    def _series_ids(self, conn: sa.Connection, keys: Sequence[SeriesKey]) -> dict[SeriesKey, int]:
        """Ids of ``keys``, creating missing series rows; new ids are not cached yet."""
        missing = {key: None for key in keys if key not in self._ids}
        if not missing:
            return {}
        series = self._tables.series
        by_hash: dict[str, SeriesKey] = {}
        rows = []
        for key in missing:
            tags = encode_tags(key.tags)
            digest = key_hash(key.name, tags)
            by_hash[digest] = key
            rows.append({"key_hash": digest, "name": key.name, "tags": tags})
        conn.execute(insert_ignore(self._engine.dialect.name, series, "key_hash"), rows)
        found: dict[SeriesKey, int] = {}
        for chunk in _chunks(list(by_hash)):
            stmt = sa.select(series.c.id, series.c.key_hash).where(series.c.key_hash.in_(chunk))
            # A locking read sees rows another transaction committed after our snapshot
            # (InnoDB's REPEATABLE READ), e.g. the same new series created concurrently.
            for series_id, digest in conn.execute(stmt.with_for_update(read=True)):
                found[by_hash[digest]] = int(series_id)
        return found

    def write(self, batch: Sequence[Series]) -> None:
        """Upsert every sample in one transaction; the last write of a (key, ts) wins."""
        parts = [s for s in batch if len(s)]
        if not parts:
            return
        with self._write_lock, self._transaction("write", write=True) as conn:
            self._check_generation(conn)
            new = self._series_ids(conn, [s.key for s in parts])
            ids = self._ids
            sid = np.repeat(
                np.fromiter((new.get(s.key) or ids[s.key] for s in parts), np.int64, len(parts)),
                [len(s) for s in parts],
            )
            ts = np.concatenate([s.timestamps for s in parts]).astype(np.int64, copy=False)
            values = np.concatenate([s.values for s in parts]).astype(np.float64, copy=False)
            sid, ts, values = _last_wins(sid, ts, values)
            self._flavor.insert_samples(conn.connection.dbapi_connection, sid, ts, values)
        # Only after the commit: ids from a rolled-back transaction must not be remembered.
        self._ids.update(new)

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Delete older samples of the selected series; drop series left empty."""
        samples, series = self._tables.samples, self._tables.series
        removed = gone = 0
        with self._write_lock, self._transaction("delete", write=True) as conn:
            self._check_generation(conn, exclusive=True)
            old = samples.c.ts < cutoff_ns if cutoff_ns < MAX_NS else sa.true()
            empty = ~sa.exists().where(samples.c.series_id == series.c.id)
            if selector is None:
                removed = conn.execute(sa.delete(samples).where(old)).rowcount
                gone = conn.execute(sa.delete(series).where(empty)).rowcount
            else:
                ids = [series_id for series_id, _ in self._matching(conn, selector)]
                for chunk in _chunks(ids):
                    where = samples.c.series_id.in_(chunk)
                    removed += conn.execute(sa.delete(samples).where(where, old)).rowcount
                    gone += conn.execute(
                        sa.delete(series).where(series.c.id.in_(chunk), empty)
                    ).rowcount
            if gone:
                meta = self._tables.meta
                conn.execute(
                    sa.update(meta).where(meta.c.key == _GENERATION).values(value=meta.c.value + 1)
                )
                self._ids.clear()
                self._generation = None
        return int(removed)

    # -- reading ------------------------------------------------------------------------

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """One indexed range scan, converted column-wise to numpy."""
        if start_ns >= end_ns:
            return Series.empty(key)
        with self._cursor("read") as cur:
            cur.execute(self._sql_read, (_hash_of(key), start_ns, end_ns))
            rows = cur.fetchall()
        if not rows:
            return Series.empty(key)
        ts, values = _columns(rows, 1)
        return Series(key, ts, values)

    def count(self, key: SeriesKey, start_ns: int = -(2**63), end_ns: int = MAX_NS) -> int:
        """``COUNT(*)`` of the key's samples in ``[start_ns, end_ns)``."""
        if start_ns >= end_ns:
            return 0
        with self._cursor("count") as cur:
            cur.execute(self._sql_count, (_hash_of(key), start_ns, end_ns))
            return int(cur.fetchone()[0])

    def _matching(self, conn: sa.Connection, selector: Selector) -> list[tuple[int, SeriesKey]]:
        """(id, key) of the series ``selector`` matches, filtered in SQL then checked exactly."""
        series = self._tables.series
        stmt = sa.select(series.c.id, series.c.name, series.c.tags)
        if selector.name is not None:
            stmt = stmt.where(series.c.name == selector.name)
        if selector.exact:
            stmt = stmt.where(series.c.tags == encode_tags(selector.tags))
        else:
            for tag, value in selector.tags.items_tuple:
                fragment = encode_tag_filter(tag, value)
                stmt = stmt.where(series.c.tags.contains(fragment, autoescape=True))
        found = []
        for series_id, name, tags in conn.execute(stmt):
            key = decode_key(name, tags)
            if selector.matches(key):
                found.append((int(series_id), key))
        return found

    def keys(self) -> Iterator[SeriesKey]:
        """Every stored series (a series row exists only while it holds samples)."""
        return self.select(Selector())

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        """The keys ``selector`` matches; name and tags are filtered in SQL."""
        with self._transaction("select") as conn:
            found = self._matching(conn, selector)
        return iter([key for _, key in found])

    def query(self, selector: Selector, start_ns: int, end_ns: int) -> Iterator[Series]:
        """The selected non-empty series in key order, fetched 500 series per statement."""
        if start_ns >= end_ns:
            return
        samples = self._tables.samples
        with self._transaction("query") as conn:
            matched = sorted(self._matching(conn, selector), key=lambda row: row[1])
        for chunk in _chunks(matched):
            ids = [series_id for series_id, _ in chunk]
            stmt = (
                sa.select(samples.c.series_id, samples.c.ts, samples.c.value)
                .where(
                    samples.c.series_id.in_(ids), samples.c.ts >= start_ns, samples.c.ts < end_ns
                )
                .order_by(samples.c.series_id, samples.c.ts)
            )
            with self._transaction("query") as conn:
                rows = conn.execute(stmt).all()
            sid, ts, values = _columns(rows, 2)
            starts = np.searchsorted(sid, ids, side="left")
            ends = np.searchsorted(sid, ids, side="right")
            for (_, key), lo, hi in zip(chunk, starts.tolist(), ends.tolist(), strict=True):
                if hi > lo:
                    yield Series(key, ts[lo:hi], values[lo:hi])

    def stats(self) -> StorageStats:
        """Samples and series by ``COUNT(*)``; bytes as the database reports them."""
        t = self._tables
        with self._transaction("stats") as conn:
            samples = conn.execute(sa.select(sa.func.count()).select_from(t.samples)).scalar_one()
            series = conn.execute(sa.select(sa.func.count()).select_from(t.series)).scalar_one()
            used = self._flavor.bytes_used(conn)
        return StorageStats(samples=int(samples), series=int(series), bytes=int(used))

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> None:
        """Nothing to do: every ``write`` has committed before it returns."""
        if self._closed:
            raise BackendError(f"flush on {self.url}: the backend is closed")

    def close(self) -> None:
        """Close every pooled connection; the backend is unusable afterwards."""
        if not self._closed:
            self._closed = True
            with self._lock:
                self._engine.dispose()


class InMemorySQLiteBackend(SQLBackend):
    """``sqlite://``: one in-memory SQLite database, gone when the backend is closed."""

    capabilities = Capabilities(persistent=False, deletes=True, multiprocess=False)


def _is_memory_sqlite(url: str) -> bool:
    try:
        parsed = normalize_url(parse_url(url))
    except BackendError:
        return False  # __init__ reports the bad URL
    return parsed.get_backend_name() == "sqlite" and (
        parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    )
