"""The SQL backend's read statements, compiled once for the raw DBAPI cursor.

Each read of one series is one statement — a ``UNION ALL`` of the blocks overlapping the
range and the head rows in it — so it sees one snapshot even under PostgreSQL's READ
COMMITTED while another process seals head rows into blocks. Rows come as
``(series_id, kind, ts, value, data)``; see :func:`metricskit.storage._sql_blocks.assemble`.

:func:`read_many` (a query engine's read of many series) keeps the decoded blocks of
recent reads in a :class:`DecodedBlocks` cache keyed by the blocks' bytes, so a dashboard
asking again for the same range decodes nothing.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage._chunk_codec import Grids
from metricskit.storage._sql_blocks import (
    BLOCK_KIND,
    CHUNK,
    ROW_KIND,
    Arrays,
    Int64Array,
    decode_blocks,
    head_arrays,
)
from metricskit.storage._sql_schema import (
    Tables,
    decode_key,
    encode_tag_filter,
    encode_tags,
    key_hash,
)

__all__ = ["Compiled", "DecodedBlocks", "ReadStatements", "execute", "key_of", "read_many"]

Compiled = tuple[str, tuple[str, ...], dict[str, Any]]
"""SQL text, its parameter names in positional order, and their default values."""

_KIND: sa.ColumnClause[Any] = sa.literal_column("kind")
_TS: sa.ColumnClause[Any] = sa.literal_column("ts")
_ESCAPE = "/"


def _like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern escaped with ``/``."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def execute(cursor: Any, compiled: Compiled, **params: Any) -> list[Any]:
    """Run ``compiled`` on a raw DBAPI cursor and fetch every row."""
    sql, names, defaults = compiled
    values = {**defaults, **params}
    cursor.execute(sql, tuple(values[name] for name in names))
    return list(cursor.fetchall())


class ReadStatements:
    """Statements of one store (tables and dialect), compiled once."""

    def __init__(self, tables: Tables, dialect: sa.Dialect, cache_bytes: int = 0) -> None:
        self.tables = tables
        self.dialect = dialect
        self.decoded = DecodedBlocks(cache_bytes)
        """Decoded blocks of recent :func:`read_many` calls, up to ``cache_bytes``."""
        t = tables
        by_hash = (
            sa.select(t.series.c.id).where(t.series.c.key_hash == sa.bindparam("h"))
        ).scalar_subquery()
        blocks, head = self.blocks_and_head(lambda table: table.c.series_id == by_hash)
        self.read = self.compile(sa.union_all(blocks, head).order_by(_KIND, _TS))
        """One series by key hash ``h`` in ``[start, end)``."""
        by_id: sa.BindParameter[int] = sa.bindparam("sid")
        self.read_id = self.compile(
            sa.union_all(*self.blocks_and_head(lambda table: table.c.series_id == by_id)).order_by(
                _KIND, _TS
            )
        )
        """One series by id ``sid`` in ``[start, end)``."""
        # last(): the head's newest row in range, else the newest block overlapping it.
        newest_row = head.order_by(t.samples.c.ts.desc()).limit(1).subquery()
        newest_block = blocks.order_by(t.blocks.c.end_ts.desc()).limit(1).subquery()
        self.last = self.compile(sa.union_all(sa.select(newest_row), sa.select(newest_block)))
        """The newest head row and the newest block of series ``h`` in ``[start, end)``."""
        self._match: dict[tuple[bool, bool, int], Compiled] = {}
        self._lists: dict[tuple[str, int], Compiled] = {}

    def compile(self, stmt: sa.ClauseElement) -> Compiled:
        """SQL text for the raw DBAPI cursor, its parameter names in order, their defaults."""
        compiled = stmt.compile(dialect=self.dialect)
        names: list[str] = getattr(compiled, "positiontup", None) or []
        return str(compiled), tuple(names), dict(compiled.params)

    def blocks_and_head(
        self, which: Callable[[sa.Table], sa.ColumnElement[bool]]
    ) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """``(series_id, kind, ts, value, data)`` of blocks and head rows in ``[:start, :end)``."""
        b, h = self.tables.blocks, self.tables.samples
        start: sa.BindParameter[int] = sa.bindparam("start")
        end: sa.BindParameter[int] = sa.bindparam("end")
        blocks = sa.select(
            b.c.series_id,
            sa.literal_column(str(BLOCK_KIND)).label("kind"),
            b.c.start_ts.label("ts"),
            sa.cast(sa.null(), h.c.value.type).label("value"),
            b.c.data,
        ).where(which(b), b.c.end_ts >= start, b.c.start_ts < end)
        head = sa.select(
            h.c.series_id,
            sa.literal_column(str(ROW_KIND)).label("kind"),
            h.c.ts,
            h.c.value,
            sa.cast(sa.null(), b.c.data.type).label("data"),
        ).where(which(h), h.c.ts >= start, h.c.ts < end)
        return blocks, head

    def ids_of(self, n: int) -> Compiled:
        """``(id, key_hash)`` of the series whose hash is one of ``h0`` ... ``h{n-1}``."""
        compiled = self._lists.get(("ids", n))
        if compiled is None:
            series = self.tables.series
            hashes: list[sa.BindParameter[str]] = [sa.bindparam(f"h{i}") for i in range(n)]
            stmt = sa.select(series.c.id, series.c.key_hash).where(series.c.key_hash.in_(hashes))
            compiled = self._lists["ids", n] = self.compile(stmt)
        return compiled

    def many_of(self, n: int) -> Compiled:
        """Blocks and head rows in ``[start, end)`` of the series ``s0`` ... ``s{n-1}``.

        Compiled once per list length (at most 500): expanding a list parameter at every
        execution costs SQLAlchemy more than the statement costs SQLite.
        """
        compiled = self._lists.get(("many", n))
        if compiled is None:
            ids: list[sa.BindParameter[int]] = [sa.bindparam(f"s{i}") for i in range(n)]
            blocks, head = self.blocks_and_head(lambda table: table.c.series_id.in_(ids))
            stmt = sa.union_all(blocks, head).order_by(sa.text("1"), _KIND, _TS)
            compiled = self._lists["many", n] = self.compile(stmt)
        return compiled

    def many(self, ids: list[int]) -> sa.CompoundSelect[Any]:
        """Blocks and head rows of the series ``ids`` (bind ``start`` and ``end``)."""
        blocks, head = self.blocks_and_head(lambda table: table.c.series_id.in_(ids))
        return sa.union_all(blocks, head).order_by(sa.text("1"), _KIND, _TS)

    def match(self, selector: Selector) -> tuple[Compiled, dict[str, Any]]:
        """``(statement, parameters)`` listing ``(id, name, tags)`` of candidate series.

        The statement depends only on the selector's shape (name or not, exact or not, how
        many tags), so it is compiled once per shape.
        """
        tags = selector.tags.items_tuple
        shape = (selector.name is not None, selector.exact, 0 if selector.exact else len(tags))
        compiled = self._match.get(shape)
        if compiled is None:
            compiled = self._match[shape] = self._compile_match(*shape)
        params: dict[str, Any] = {"name": selector.name}
        if selector.exact:
            params["tags"] = encode_tags(selector.tags)
        else:
            for i, (tag, value) in enumerate(tags):
                params[f"t{i}"] = f"%{_like_escape(encode_tag_filter(tag, value))}%"
        return compiled, params

    def _compile_match(self, by_name: bool, exact: bool, n_tags: int) -> Compiled:
        series = self.tables.series
        stmt = sa.select(series.c.id, series.c.name, series.c.tags)
        if by_name:
            stmt = stmt.where(series.c.name == sa.bindparam("name"))
        if exact:
            stmt = stmt.where(series.c.tags == sa.bindparam("tags"))
        for i in range(n_tags):
            stmt = stmt.where(series.c.tags.like(sa.bindparam(f"t{i}"), escape=_ESCAPE))
        return self.compile(stmt)


@functools.lru_cache(maxsize=1 << 16)
def key_of(name: str, encoded_tags: str) -> SeriesKey:
    """:func:`~metricskit.storage._sql_schema.decode_key`, memoised: listing the same
    series query after query parses the same JSON."""
    return decode_key(name, encoded_tags)


@functools.lru_cache(maxsize=1 << 16)
def _hash(key: SeriesKey) -> str:
    # a query engine reads the same keys query after query; hashing is pure
    return key_hash(key.name, encode_tags(key.tags))


class DecodedBlocks:
    """The decoded samples of recently read series, a least-recently-used cache.

    An entry is one series' blocks joined. It is found by the series id and its blocks'
    start times and sizes, and used only if the blocks' bytes are the very bytes it was
    decoded from (one memory comparison), so it is never stale: a block another process
    rewrote is decoded afresh. A warm read is one lookup per series, no decompression.
    Entries count their arrays and bytes against ``max_bytes``; 0 turns the cache off.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[tuple[bytes, ...], Arrays, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # Series scraped together share their timestamps: one array for all of them
        # (less memory, and range functions see one grid without comparing arrays).
        self._grids: dict[tuple[int, int, int], Int64Array] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes the entries hold now."""
        return self._bytes

    def decode(
        self, where: Hashable, blobs: tuple[bytes, ...], grids: Grids | None = None
    ) -> Arrays:
        """The joined samples of ``blobs`` (blocks in time order); read-only arrays.

        ``where`` names the blocks (series id, start times, sizes): it finds the entry,
        and the bytes decide whether the entry is still right. ``grids``, one dict per
        read, lets series with the same regular timestamps decode them once.
        """
        if self.max_bytes <= 0 or not blobs:
            return decode_blocks(blobs, grids)
        with self._lock:
            hit = self._entries.get(where)
            if hit is not None and hit[0] == blobs:
                self._entries.move_to_end(where)
                return hit[1]
        ts, values = decode_blocks(blobs, grids)
        ts.flags.writeable = values.flags.writeable = False  # shared by later reads
        size = ts.nbytes + values.nbytes + sum(len(b) for b in blobs)
        if size <= self.max_bytes:
            with self._lock:
                ts = self._grid(ts)
                old = self._entries.pop(where, None)
                self._bytes += size - (old[2] if old else 0)
                self._entries[where] = (blobs, (ts, values), size)
                while self._bytes > self.max_bytes:
                    _, (_, (gone, _), freed) = self._entries.popitem(last=False)
                    self._bytes -= freed
                    shape = (int(gone.size), int(gone[0]), int(gone[-1]))
                    if self._grids.get(shape) is gone:
                        del self._grids[shape]
        return ts, values

    def _grid(self, ts: Int64Array) -> Int64Array:
        """``ts``, or an equal array already held (counted in full by every entry anyway)."""
        shape = (int(ts.size), int(ts[0]), int(ts[-1]))
        grid = self._grids.get(shape)
        if grid is not None and np.array_equal(grid, ts):
            return grid
        self._grids[shape] = ts
        return ts


class _Joiner:
    """Assembles series of one read; series sharing a grid share one cut of it."""

    def __init__(self, decoded: DecodedBlocks, start: int, end: int) -> None:
        self.decoded, self.start, self.end = decoded, start, end
        # keyed by id(): the cache or the rows keep each array alive during the read
        self._cuts: dict[int, tuple[Int64Array, int, int]] = {}
        self._grids: Grids = {}

    def series(self, key: SeriesKey, rows: Sequence[Any]) -> Series:
        """``key``'s samples in range from its rows: blocks (decoded or cached), then head."""
        blocks = [row for row in rows if row[1] == BLOCK_KIND]
        blobs = tuple(bytes(row[4]) for row in blocks)
        where = (blocks[0][0], *((row[2], len(row[4])) for row in blocks)) if blocks else ()
        ts, values = self.decoded.decode(where, blobs, self._grids)
        if blobs and (ts[0] < self.start or ts[-1] >= self.end):
            cut = self._cuts.get(id(ts))
            if cut is None:
                lo, hi = (int(i) for i in np.searchsorted(ts, (self.start, self.end)))
                cut = self._cuts[id(ts)] = (ts[lo:hi], lo, hi)
            ts, values = cut[0], values[cut[1] : cut[2]]
        if len(blobs) < len(rows):  # head rows are newer than every block
            head_ts, head_values = head_arrays(rows[len(blobs) :], 2, 3)
            ts, values = np.concatenate((ts, head_ts)), np.concatenate((values, head_values))
        return Series(key, ts, values) if ts.size else Series.empty(key)


def read_many(
    conn: sa.Connection, reads: ReadStatements, keys: Sequence[SeriesKey], start: int, end: int
) -> list[Series]:
    """Each key's samples in ``[start, end)``, empty or not, inside the caller's transaction.

    Per 500 keys, one statement finds the series ids by key hash and one reads every
    block and head row of them in the range, so each series is read once.
    """
    rows_of: dict[SeriesKey, list[Any]] = {}
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for first in range(0, len(keys), CHUNK):
            by_hash = {_hash(key): key for key in keys[first : first + CHUNK]}
            hashes = {f"h{i}": digest for i, digest in enumerate(by_hash)}
            found = execute(cur, reads.ids_of(len(hashes)), **hashes)
            ids = {int(sid): by_hash[digest] for sid, digest in found}
            if not ids:
                continue
            chosen = {f"s{i}": sid for i, sid in enumerate(ids)}
            for row in execute(cur, reads.many_of(len(chosen)), start=start, end=end, **chosen):
                rows_of.setdefault(ids[row[0]], []).append(row)
    finally:
        cur.close()
    joiner = _Joiner(reads.decoded, start, end)
    return [joiner.series(key, rows_of.get(key, ())) for key in keys]
