"""The SQL storage backend: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy Core.

URLs::

    sqlite:///path/metrics.db                   a file (the library's default store)
    sqlite://   or   sqlite:///:memory:         in memory, gone when closed
    postgresql://user@host:5432/db              psycopg 3 (also postgresql+psycopg://)
    mysql://root@host:3306/db                   PyMySQL (also mariadb://, mysql+pymysql://)

Options: ``table_prefix`` (default ``"metricskit_"``), ``busy_timeout`` (SQLite, seconds,
default 30), ``engine_options`` (passed to ``sqlalchemy.create_engine``) and
``read_cache_mb`` (default 128, about 8 million samples; 0 turns it off): the decoded
samples PromQL queries keep between calls
(:class:`~metricskit.storage._sql_reads.DecodedBlocks`).

The layout is described in :mod:`metricskit.storage._sql_schema`: compressed blocks of up
to 4,096 samples per series plus a head of recent rows. Each ``write`` is one transaction
(an ``IMMEDIATE`` one on SQLite), so a failed write leaves the store as it was and the same
batch can be retried. A series' samples go to the head while it is small; a big write, a
head reaching 512 rows, or a write at or before the newest block's last timestamp merges
into blocks (rewriting only the blocks it touches). On SQLite, WAL mode with
``synchronous=NORMAL`` makes a returned write survive a crash of the process, and several
processes may write one file. A file deleted or replaced while open is reported by the
next ``write`` or ``flush`` instead of losing what follows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from metricskit.errors import BackendError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage._chunk_codec import decode_block
from metricskit.storage._sql_batch import Segment, segments, split_odd
from metricskit.storage._sql_blocks import ROW_KIND, BlockWriter, Pending, assemble
from metricskit.storage._sql_connection import GENERATION_KEY as _GENERATION
from metricskit.storage._sql_connection import VERSION_KEY as _VERSION
from metricskit.storage._sql_connection import SQLConnection
from metricskit.storage._sql_errors import parse_url, safe_url, translate
from metricskit.storage._sql_flavors import flavor_for, insert_ignore, normalize_url
from metricskit.storage._sql_reads import Compiled, ReadStatements, execute, key_of, read_many
from metricskit.storage._sql_schema import (
    DEFAULT_PREFIX,
    SEAL_ROWS,
    Tables,
    encode_tags,
    key_hash,
)
from metricskit.storage.base import MAX_NS, Capabilities, StorageBackend, StorageStats

__all__ = ["InMemorySQLiteBackend", "SQLBackend"]

_CHUNK = 500  # ids per IN (...) list: far below every database's parameter limit
_FEW = 8  # a query matching at most this many series reads them one by one

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


def _hash_of(key: SeriesKey) -> str:
    return key_hash(key.name, encode_tags(key.tags))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SQLBackend(SQLConnection, StorageBackend):
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
        read_cache_mb: float = 128.0,
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
        # Head rows this process wrote per series id since they were last sealed: an upper
        # bound that only decides when to seal (another process may seal them first).
        self._head_rows: dict[int, int] = {}
        self._blocks = BlockWriter(self._tables)
        try:
            options = {**self._flavor.engine_options(), **(engine_options or {})}
            self._engine = sa.create_engine(self._url, **options)
        except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
            raise translate(exc, self._url, "open", connecting=isinstance(exc, OSError)) from exc
        self._flavor.install(self._engine)
        try:
            self.schema_version_on_open = self._create_schema()
            """The schema version the store had when this backend opened it (``None``: the
            tables were created by this open); :attr:`schema_version` is the one it has now."""
            self._flavor.prepare(self._engine)
            cache_bytes = int(read_cache_mb * 2**20)
            self._reads = ReadStatements(self._tables, self._engine.dialect, cache_bytes)
            if self.schema_version_on_open == 1:
                self.compact()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}({safe_url(self._url)!r})"

    # -- writing ------------------------------------------------------------------------

    def _check_generation(self, conn: sa.Connection) -> None:
        """Take the store's write lock; drop cached ids if another process deleted series.

        An exclusive row lock (SQLite's IMMEDIATE transaction is one already) serialises
        writers, so "head rows are newer than the newest block" holds between the check
        of a series' newest block and the commit.
        """
        meta = self._tables.meta
        stmt = sa.select(meta.c.value).where(meta.c.key == _GENERATION)
        generation = conn.execute(stmt.with_for_update()).scalar_one()
        if generation != self._generation:
            self._ids.clear()
            self._head_rows.clear()
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
        """Write every sample in one transaction; the last write of a (key, ts) wins.

        Per series: a small write after its newest block goes to head rows; anything else
        (a big write, a head reaching ``SEAL_ROWS``, a write into the blocks' time span)
        is merged into blocks, rewriting only the blocks it overlaps.
        """
        parts = [s for s in batch if len(s)]
        if not parts:
            return
        self._flavor.check_file(self.url)
        with self._write_lock, self._transaction("write", write=True) as conn:
            self._check_generation(conn)
            new = self._series_ids(conn, [s.key for s in parts])
            ids = [new.get(s.key) or self._ids[s.key] for s in parts]
            heads = self._writesegments(conn, segments(ids, parts))
        # Only after the commit: state from a rolled-back transaction must not be remembered.
        self._ids.update(new)
        for series_id, rows in heads.items():
            if rows:
                self._head_rows[series_id] = self._head_rows.get(series_id, 0) + rows
            else:
                self._head_rows.pop(series_id, None)

    def _writesegments(self, conn: sa.Connection, segments: list[Segment]) -> dict[int, int]:
        """Place each series' sorted unique samples; returns head rows added per series id."""
        newest = self._blocks.newest_ends(conn, [seg[0] for seg in segments])
        to_head: list[Segment] = []
        to_blocks: list[Segment] = []
        for seg in segments:
            series_id, ts = seg[0], seg[1]
            end = newest.get(series_id)
            held = self._head_rows.get(series_id, 0)
            if held + ts.size < SEAL_ROWS and (end is None or ts[0] > end):
                to_head.append(seg)
            else:
                to_blocks.append(seg)
        heads: dict[int, int] = {}
        if to_head:
            to_head, odd = split_odd(to_head)
            to_blocks.extend(odd)
        if to_head:
            sizes = [seg[1].size for seg in to_head]
            sid = np.repeat(np.array([seg[0] for seg in to_head], dtype=np.int64), sizes)
            ts = np.concatenate([seg[1] for seg in to_head])
            values = np.concatenate([seg[2] for seg in to_head])
            dbapi = conn.connection.dbapi_connection
            self._flavor.insert_samples(dbapi, sid, ts, values)
            heads.update((seg[0], seg[1].size) for seg in to_head)
        pending = Pending()
        for series_id, ts, values in to_blocks:
            self._blocks.merge(conn, series_id, (ts, values), newest.get(series_id), pending)
            heads[series_id] = 0
        self._blocks.apply(conn, pending)
        return heads

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the store now (see :data:`SCHEMA_VERSION`)."""
        meta = self._tables.meta
        with self._transaction("read the schema version") as conn:
            return int(
                conn.execute(sa.select(meta.c.value).where(meta.c.key == _VERSION)).scalar_one()
            )

    def compact(self) -> None:
        """Seal every head row into blocks (run after upgrading a version-1 store)."""
        h = self._tables.samples
        with self._transaction("compact") as conn:
            ids = [int(i) for i in conn.execute(sa.select(h.c.series_id).distinct()).scalars()]
        for chunk in _chunks(ids):
            with self._write_lock, self._transaction("compact", write=True) as conn:
                self._check_generation(conn)
                newest = self._blocks.newest_ends(conn, chunk)
                pending = Pending()
                empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
                for series_id in chunk:
                    self._blocks.merge(conn, series_id, empty, newest.get(series_id), pending)
                self._blocks.apply(conn, pending)
            for series_id in chunk:
                self._head_rows.pop(series_id, None)

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Delete older samples of the selected series; drop series left empty.

        Blocks wholly older than the cutoff are dropped, a block it cuts through is
        rewritten with its newer samples.
        """
        samples, series, blocks = self._tables.samples, self._tables.series, self._tables.blocks
        everything = cutoff_ns >= MAX_NS
        removed = gone = 0
        with self._write_lock, self._transaction("delete", write=True) as conn:
            self._check_generation(conn)
            old = sa.true() if everything else samples.c.ts < cutoff_ns
            empty = ~sa.exists().where(samples.c.series_id == series.c.id) & ~sa.exists().where(
                blocks.c.series_id == series.c.id
            )
            cut = None if everything else cutoff_ns
            if selector is None:
                removed = conn.execute(sa.delete(samples).where(old)).rowcount
                removed += self._blocks.trim_before(conn, cut, None)
                gone = conn.execute(sa.delete(series).where(empty)).rowcount
            else:
                ids = [series_id for series_id, _ in self._matching(conn, selector)]
                removed += self._blocks.trim_before(conn, cut, ids)
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
                self._head_rows.clear()
                self._generation = None
        return int(removed)

    # -- reading ------------------------------------------------------------------------

    def _fetch(self, compiled: Compiled, what: str, **params: Any) -> list[Any]:
        with self._cursor(what) as cur:
            return execute(cur, compiled, **params)

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """One statement for the overlapping blocks and head rows; decodes only those."""
        if start_ns >= end_ns:
            return Series.empty(key)
        rows = self._fetch(self._reads.read, "read", h=_hash_of(key), start=start_ns, end=end_ns)
        ts, values = assemble(rows, start_ns, end_ns)
        if not ts.size:
            return Series.empty(key)
        return Series(key, ts, values)

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        """The newest sample in range: the newest head row, else one block is decoded."""
        if start_ns >= end_ns:
            return None
        rows = self._fetch(self._reads.last, "last", h=_hash_of(key), start=start_ns, end=end_ns)
        for _, kind, ts, value, _ in rows:
            if kind == ROW_KIND:
                return int(ts), float("nan") if value is None else float(value)
        for _, _, _, _, data in rows:
            block_ts, block_values = decode_block(data)
            at = int(np.searchsorted(block_ts, end_ns, side="left")) - 1
            if at >= 0 and block_ts[at] >= start_ns:
                return int(block_ts[at]), float(block_values[at])
        return None

    def _matching(self, conn: sa.Connection, selector: Selector) -> list[tuple[int, SeriesKey]]:
        """(id, key) of the series ``selector`` matches, filtered in SQL then checked exactly."""
        compiled, params = self._reads.match(selector)
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = execute(cur, compiled, **params)
        finally:
            cur.close()
        found = []
        for series_id, name, encoded in rows:
            key = key_of(name, encoded)
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
        few: list[tuple[SeriesKey, list[Any]]] = []
        with self._transaction("query") as conn:
            matched = sorted(self._matching(conn, selector), key=lambda row: row[1])
            if len(matched) <= _FEW:
                # The common case (one series): a precompiled statement on the raw cursor,
                # in the same transaction as the match.
                cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    for series_id, key in matched:
                        rows = execute(
                            cur, self._reads.read_id, sid=series_id, start=start_ns, end=end_ns
                        )
                        few.append((key, rows))
                finally:
                    cur.close()
        if len(matched) <= _FEW:
            for key, rows in few:
                ts, values = assemble(rows, start_ns, end_ns)
                if ts.size:
                    yield Series(key, ts, values)
            return
        for chunk in _chunks(matched):
            stmt = self._reads.many([series_id for series_id, _ in chunk])
            with self._transaction("query") as conn:
                fetched = conn.execute(stmt, {"start": start_ns, "end": end_ns}).all()
            by_series: dict[int, list[Any]] = {}
            for row in fetched:
                by_series.setdefault(row[0], []).append(row)
            for series_id, key in chunk:
                ts, values = assemble(by_series.get(series_id, []), start_ns, end_ns)
                if ts.size:
                    yield Series(key, ts, values)

    def names(self) -> set[str]:
        """The distinct metric names: one ``SELECT DISTINCT`` on the indexed name column."""
        stmt = sa.select(self._tables.series.c.name).distinct()
        with self._transaction("names") as conn:
            return {str(name) for name in conn.execute(stmt).scalars()}

    def read_many(self, keys: Sequence[SeriesKey], start_ns: int, end_ns: int) -> list[Series]:
        """Each key's samples, two statements per 500 keys in one transaction."""
        if start_ns >= end_ns or not keys:
            return [Series.empty(key) for key in keys]
        with self._transaction("read") as conn:
            return read_many(conn, self._reads, keys, int(start_ns), int(end_ns))

    def stats(self) -> StorageStats:
        """Samples and series by ``COUNT(*)`` and block sizes; bytes as the database says."""
        t = self._tables
        with self._transaction("stats") as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(t.samples)).scalar_one()
            in_blocks = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.blocks.c.n), 0))
            ).scalar_one()
            series = conn.execute(sa.select(sa.func.count()).select_from(t.series)).scalar_one()
            used = self._flavor.bytes_used(conn)
        return StorageStats(samples=int(rows) + int(in_blocks), series=int(series), bytes=int(used))

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> None:
        """Every ``write`` has committed before it returns; check the file is still there.

        SQLite keeps writing to a deleted (unlinked) file without error, so a file that
        is gone or replaced since the backend opened it raises instead of losing data.
        """
        if self._closed:
            raise BackendError(f"flush on {self.url}: the backend is closed")
        self._flavor.check_file(self.url)

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
