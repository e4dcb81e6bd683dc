"""Block-level work of the SQL backend: merging samples into blocks, trimming, decoding.

Everything here runs inside a transaction the caller opened (:mod:`metricskit.storage.sql`),
holding the store's write lock for changes, and keeps the layout's invariants
(:mod:`metricskit.storage._sql_schema`): the blocks of a series never overlap, and its head
rows are newer than its newest block.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from metricskit.storage._chunk_codec import Grids, decode_block, encode_block, merge_last_wins
from metricskit.storage._chunk_codec import decode_blocks as decode_all
from metricskit.storage._sql_schema import BLOCK_SAMPLES, Tables

__all__ = [
    "BLOCK_KIND",
    "ROW_KIND",
    "BlockWriter",
    "Pending",
    "assemble",
    "decode_blocks",
    "head_arrays",
]

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
Arrays = tuple[Int64Array, Float64Array]
_EMPTY: Arrays = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
CHUNK = 500  # ids per IN (...) list: far below every database's parameter limit
BLOCK_KIND, ROW_KIND = 0, 1
"""The ``kind`` column of the read statements: a block row or a head row."""


def head_arrays(rows: Sequence[Sequence[Any]], ts_col: int, value_col: int) -> Arrays:
    """``(ts, values)`` of fetched head rows; NULL values come back as NaN."""
    if not rows:
        return _EMPTY
    ts = np.array([row[ts_col] for row in rows], dtype=np.int64)
    values = np.array([row[value_col] for row in rows], dtype=np.float64)
    return ts, values


def decode_blocks(blobs: Iterable[Any], grids: Grids | None = None) -> Arrays:
    """Decode blocks given in time order and join them (they never overlap); ``grids``:
    see :func:`metricskit.storage._chunk_codec.decode_blocks`."""
    blobs = list(blobs)
    return decode_all(blobs, grids) if blobs else _EMPTY


def _block_row(job: tuple[int, Int64Array, Float64Array]) -> dict[str, Any]:
    series_id, ts, values = job
    return {
        "series_id": series_id,
        "start_ts": int(ts[0]),
        "end_ts": int(ts[-1]),
        "n": int(ts.size),
        "data": encode_block(ts, values),
    }


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()
_PARALLEL = 8  # blocks in one write before encoding them on threads pays off


def _encode_all(jobs: list[tuple[int, Int64Array, Float64Array]]) -> list[dict[str, Any]]:
    """Encode blocks; many of them on a few threads (zlib and numpy release the GIL)."""
    global _POOL, _POOL_PID
    if len(jobs) < _PARALLEL:
        return [_block_row(job) for job in jobs]
    with _POOL_LOCK:
        # A forked child inherits the pool object but not its threads: make a new one.
        if _POOL is None or os.getpid() != _POOL_PID:
            workers = max(1, min(4, os.cpu_count() or 1))
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="metricskit-blocks")
            _POOL_PID = os.getpid()
        pool = _POOL
    return list(pool.map(_block_row, jobs, chunksize=16))


@dataclass
class Pending:
    """The changes one transaction makes to blocks, issued together at the end."""

    drop_blocks: list[int] = field(default_factory=list)
    drop_heads: list[int] = field(default_factory=list)
    insert: list[tuple[int, Int64Array, Float64Array]] = field(default_factory=list)
    """Blocks to write, ``(series_id, ts, values)`` each, encoded together by ``apply``."""


class BlockWriter:
    """Merges samples into one store's blocks (statements built once per backend)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        b, h = tables.blocks, tables.samples
        sid: sa.BindParameter[int] = sa.bindparam("sid")
        self._head = sa.select(h.c.ts, h.c.value).where(h.c.series_id == sid).order_by(h.c.ts)
        self._last_block = sa.select(b.c.id, b.c.n, b.c.data).where(
            b.c.series_id == sid, b.c.end_ts == sa.bindparam("end")
        )
        self._overlapping = (
            sa.select(b.c.id, b.c.data)
            .where(
                b.c.series_id == sid,
                b.c.end_ts >= sa.bindparam("lo"),
                b.c.start_ts <= sa.bindparam("hi"),
            )
            .order_by(b.c.end_ts)
        )

    def newest_ends(self, conn: sa.Connection, ids: Sequence[int]) -> dict[int, int]:
        """The newest block's ``end_ts`` of each series in ``ids`` that has blocks.

        Asked on every write for every series in it, so the SQL is written out for the raw
        cursor (building an ``IN`` list of 500 through SQLAlchemy costs more than the query).
        """
        dialect = conn.dialect
        table = dialect.identifier_preparer.format_table(self.tables.blocks)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        found: dict[int, int] = {}
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for at in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[at : at + CHUNK]]
                cur.execute(
                    f"SELECT series_id, MAX(end_ts) FROM {table} "
                    f"WHERE series_id IN ({', '.join([mark] * len(chunk))}) GROUP BY series_id",
                    chunk,
                )
                found.update((int(s), int(end)) for s, end in cur.fetchall())
        finally:
            cur.close()
        return found

    def merge(
        self,
        conn: sa.Connection,
        series_id: int,
        new: Arrays,
        newest_end: int | None,
        pending: Pending,
    ) -> None:
        """Fold the series' head rows and ``new`` (sorted, unique; it wins) into blocks."""
        head = head_arrays(conn.execute(self._head, {"sid": series_id}).all(), 0, 1)
        if head[0].size:
            pending.drop_heads.append(series_id)
        incoming = merge_last_wins(head, new)
        if not incoming[0].size:
            return
        old = _EMPTY
        if newest_end is not None:
            lo, hi = int(incoming[0][0]), int(incoming[0][-1])
            if lo > newest_end:
                # Appending: refill the newest block while the result still fits in one.
                size = incoming[0].size
                last = conn.execute(self._last_block, {"sid": series_id, "end": newest_end})
                rows = [(r[0], r[2]) for r in last if r[1] + size <= BLOCK_SAMPLES]
            else:
                found = conn.execute(self._overlapping, {"sid": series_id, "lo": lo, "hi": hi})
                rows = [(r[0], r[1]) for r in found]
            if rows:
                pending.drop_blocks.extend(int(i) for i, _ in rows)
                old = decode_blocks(data for _, data in rows)
        ts, values = merge_last_wins(old, incoming)
        for at in range(0, int(ts.size), BLOCK_SAMPLES):
            cut = slice(at, at + BLOCK_SAMPLES)
            pending.insert.append((series_id, ts[cut], values[cut]))

    def apply(self, conn: sa.Connection, pending: Pending) -> None:
        """Issue the deletes and inserts ``pending`` collected."""
        b, h = self.tables.blocks, self.tables.samples
        for at in range(0, len(pending.drop_blocks), CHUNK):
            conn.execute(sa.delete(b).where(b.c.id.in_(pending.drop_blocks[at : at + CHUNK])))
        for at in range(0, len(pending.drop_heads), CHUNK):
            conn.execute(sa.delete(h).where(h.c.series_id.in_(pending.drop_heads[at : at + CHUNK])))
        if pending.insert:
            conn.execute(sa.insert(b), _encode_all(pending.insert))

    def trim_before(
        self, conn: sa.Connection, cutoff_ns: int | None, ids: Sequence[int] | None
    ) -> int:
        """Drop blocks wholly before ``cutoff_ns`` (``None``: all), cut the boundary ones.

        Returns the number of samples removed.
        """
        b = self.tables.blocks
        groups: list[Sequence[int] | None] = (
            [None] if ids is None else [ids[at : at + CHUNK] for at in range(0, len(ids), CHUNK)]
        )
        removed = 0
        for group in groups:
            scope = [] if group is None else [b.c.series_id.in_(group)]
            old = [*scope] if cutoff_ns is None else [*scope, b.c.end_ts < cutoff_ns]
            count = sa.select(sa.func.coalesce(sa.func.sum(b.c.n), 0)).where(*old)
            removed += int(conn.execute(count).scalar_one())
            conn.execute(sa.delete(b).where(*old))
            if cutoff_ns is None:
                continue
            boundary = sa.select(b.c.id, b.c.data).where(*scope, b.c.start_ts < cutoff_ns)
            for block_id, data in conn.execute(boundary).all():
                ts, values = decode_block(data)
                keep = int(np.searchsorted(ts, cutoff_ns, side="left"))
                removed += keep
                conn.execute(
                    sa.update(b)
                    .where(b.c.id == block_id)
                    .values(
                        start_ts=int(ts[keep]),
                        n=int(ts.size - keep),
                        data=encode_block(ts[keep:], values[keep:]),
                    )
                )
        return removed


def assemble(rows: Sequence[Any], start_ns: int, end_ns: int) -> Arrays:
    """Samples in ``[start_ns, end_ns)`` of one series' ``(_, kind, ts, value, data)`` rows.

    Rows come ordered by kind then time: blocks (never overlapping) then head rows, which
    are newer than every block, so decoding and joining keeps time order.
    """
    blobs = [row[4] for row in rows if row[1] == BLOCK_KIND]
    ts, values = decode_blocks(blobs)
    if blobs and (ts[0] < start_ns or ts[-1] >= end_ns):
        lo = int(np.searchsorted(ts, start_ns, side="left"))
        hi = int(np.searchsorted(ts, end_ns, side="left"))
        ts, values = ts[lo:hi], values[lo:hi]
    if len(blobs) < len(rows):
        head_ts, head_values = head_arrays(rows[len(blobs) :], 2, 3)
        ts, values = np.concatenate((ts, head_ts)), np.concatenate((values, head_values))
    return ts, values
