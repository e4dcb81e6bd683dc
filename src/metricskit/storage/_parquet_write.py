"""Writing ``parquet://`` files: series-aligned row groups, written atomically.

A partition's rows are cut into row groups at series boundaries; a batch of groups is
encoded (values scaled to integers by :mod:`._parquet_values`, dictionaries holding only
the words each group uses) while the previous batch is being compressed and written by
a helper thread. See :mod:`metricskit.storage._parquet_format` for the format itself.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from metricskit._files import temp_beside
from metricskit.errors import BackendError, backend_error_from_oserror
from metricskit.model import SeriesKey
from metricskit.storage._parquet_format import (
    INDEX_KEY,
    SCHEMA,
    TS_TYPE,
    WORDS_TYPE,
    WRITE_OPTIONS,
    Arrays,
    pack_index,
    tags_json,
)
from metricskit.storage._parquet_values import IntArray, encode_values, repeat_into

__all__ = ["MIN_GROUP_ROWS", "partition_table", "write_partition"]

MIN_GROUP_ROWS = 8_192
"""A row group ends at the first series boundary this many rows in (see ``group_bounds``)."""


# -- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """A partition's rows sorted by (name, tags, ts): one segment per series."""

    names: list[str]
    tags: list[str]
    arrays: list[Arrays]
    starts: IntArray
    lengths: IntArray

    @classmethod
    def of(cls, series: Mapping[SeriesKey, Arrays]) -> _Layout:
        keyed = sorted(
            ((k.name, tags_json(k.tags)), arrays) for k, arrays in series.items() if arrays[0].size
        )
        lengths = np.fromiter((a[0].size for _, a in keyed), dtype=np.intp, count=len(keyed))
        starts = np.zeros(lengths.size, dtype=np.intp)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(
            [nk[0] for nk, _ in keyed],
            [nk[1] for nk, _ in keyed],
            [a for _, a in keyed],
            starts,
            lengths,
        )

    def index(self) -> list[list[object]]:
        """The footer series index (see :mod:`parquet_format`)."""
        return [
            [name, tags, int(first), int(n), int(ts[0]), int(ts[-1])]
            for name, tags, first, n, (ts, _) in zip(
                self.names, self.tags, self.starts, self.lengths, self.arrays, strict=True
            )
        ]

    def last_values(self) -> list[float]:
        """Each series' value at its newest timestamp, for the footer index."""
        return [float(vs[-1]) for _, vs in self.arrays]

    def group_bounds(self, rows: int, *, aligned: bool = True) -> list[tuple[int, int]]:
        """Row ranges of the row groups: cut at series boundaries, at most ``rows`` long.

        ``aligned=False`` cuts every ``rows`` rows regardless of series (the layout of
        files written before row groups were aligned; benchmarks use it as an anchor).

        A group closes at the first series end at least :data:`MIN_GROUP_ROWS` rows in
        (a series longer than ``rows`` is cut every ``rows``), so reading one series
        decodes that series and at most a few small neighbours, not a whole 131,072-row
        group of others.
        """
        total = int(self.lengths.sum())
        if not aligned:
            return [(a, min(a + rows, total)) for a in range(0, total, rows)]
        ends = self.starts + self.lengths
        least = min(MIN_GROUP_ROWS, rows)
        bounds = []
        a = 0
        while a < total:
            i = int(np.searchsorted(ends, a + least, side="left"))
            b = min(int(ends[i]) if i < ends.size else total, a + rows)
            bounds.append((a, b))
            a = b
        return bounds

    def row_groups(
        self, rows: int, *, reuse: bool = False, aligned: bool = True
    ) -> Iterator[pa.Table]:
        """Encode the rows ``rows`` at a time, one table per row group (see :meth:`batches`)."""
        for batch in self.batches(rows, reuse=reuse, aligned=aligned):
            yield from batch

    def batches(
        self, rows: int, *, reuse: bool = False, aligned: bool = True
    ) -> Iterator[list[pa.Table]]:
        """The row groups' tables, encoded (and handed out) in batches of up to ``rows`` rows.

        The per-call cost of the value encoding, and the writer thread's hand-off, are
        paid per batch, not per (small, series-aligned) group. With ``reuse``, the tables
        are zero-copy views of two sets of buffers used in turn, so the caller must be
        done with a batch before it takes the one after the next. Reusing buffers
        matters: fresh arrays of a row group's size are page-faulted in on every use,
        which cost more than the encoding arithmetic itself.
        """
        total = int(self.lengths.sum())
        if total == 0:
            return
        size = min(rows, total)
        pool = [_GroupBuffers(size), _GroupBuffers(size)] if reuse else []
        words = (_Words(self.names), _Words(self.tags))
        bounds = self.group_bounds(rows, aligned=aligned)
        first = 0
        for n_batch in itertools.count():
            if first == len(bounds):
                return
            start = bounds[first][0]
            last = first + 1
            while last < len(bounds) and bounds[last][1] - start <= rows:
                last += 1
            buffers = pool[n_batch % 2] if pool else _GroupBuffers(bounds[last - 1][1] - start)
            yield buffers.tables(self, bounds[first:last], words)
            first = last

    def segments(self, a: int, b: int) -> tuple[int, int, list[Arrays], IntArray]:
        """The series ``lo:hi`` overlapping rows ``a:b``, their pieces there, and lengths."""
        ends = self.starts + self.lengths
        lo = int(np.searchsorted(ends, a, side="right"))
        hi = int(np.searchsorted(self.starts, b, side="left"))
        cut_lo = np.maximum(self.starts[lo:hi], a) - self.starts[lo:hi]
        cut_hi = np.minimum(ends[lo:hi], b) - self.starts[lo:hi]
        pieces = [
            (ts[i:j], vs[i:j])
            for (ts, vs), i, j in zip(
                self.arrays[lo:hi], cut_lo.tolist(), cut_hi.tolist(), strict=True
            )
        ]
        return lo, hi, pieces, cut_hi - cut_lo


class _Words:
    """One dictionary column's words for a whole file, cut per row group.

    Row groups span a handful of series, so plain Python on their few words is cheaper
    here than numpy's or Arrow's per-call overhead.
    """

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.dictionaries: dict[tuple[str, ...], pa.Array] = {}

    def column(
        self, lo: int, hi: int, lengths: list[int], out: npt.NDArray[np.int32]
    ) -> pa.DictionaryArray:
        """Segments ``lo:hi`` repeated ``lengths`` times, with only the words they use.

        A row group's dictionary keeps only its own words (sorted), which is what keeps
        the ``tags`` column small; a whole-file dictionary would be stored in every group.
        """
        words = self.words[lo:hi]
        unique = tuple(sorted(set(words)))
        if len(unique) == 1:
            out = _zero_codes(out.size)
        else:
            position = {w: i for i, w in enumerate(unique)}
            repeat_into(out, [position[w] for w in words], lengths)
        dictionary = self.dictionaries.get(unique)
        if dictionary is None:
            dictionary = self.dictionaries[unique] = _strings(unique)
        # Bounds are right by construction: no need for Arrow to check every index.
        return pa.DictionaryArray.from_buffers(
            WORDS_TYPE, out.size, [None, pa.py_buffer(out)], dictionary
        )


def _strings(words: tuple[str, ...]) -> pa.StringArray:
    """``pa.array(words, pa.string())`` built from buffers.

    ``pa.array`` on a Python sequence imports pandas to check for pandas objects, which
    cost a process's first flush one to two seconds.
    """
    data = [w.encode() for w in words]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.StringArray.from_buffers(
        len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data))
    )


@functools.lru_cache(maxsize=4)
def _zero_codes(size: int) -> npt.NDArray[np.int32]:
    """Read-only dictionary indices of a row group holding one word (most ``name`` columns).

    Shared by every such row group: calloc'd pages that are never written cost nothing.
    """
    zeros = np.zeros(size, dtype=np.int32)
    zeros.flags.writeable = False
    return zeros


@functools.lru_cache(maxsize=4)
def _nulls(size: int) -> pa.Array:
    """An all-null ``value`` column (immutable, so shared by every file's row groups)."""
    return pa.nulls(size, pa.float64())


def _masked(
    kind: pa.DataType, data: npt.NDArray[Any], where: npt.NDArray[np.bool_], valid: bool
) -> pa.Array:
    """``data`` as an Arrow array, null where ``where`` is not ``valid`` (zero-copy data).

    ``np.packbits`` builds the validity bitmap several times faster than ``pa.array``'s
    ``mask=``, which mattered: a row group with one -0.0 needs two such columns.
    """
    bitmap = np.packbits(where, bitorder="little")
    if not valid:
        np.invert(bitmap, out=bitmap)
        tail = where.size % 8
        if tail:
            bitmap[-1] &= (1 << tail) - 1
    valid_count = int(np.count_nonzero(where))
    if not valid:
        valid_count = where.size - valid_count
    return pa.Array.from_buffers(
        kind,
        where.size,
        [pa.py_buffer(bitmap), pa.py_buffer(data)],
        null_count=where.size - valid_count,
    )


class _GroupBuffers:
    """The arrays one batch of row groups is built in (and its tables are views of)."""

    def __init__(self, size: int) -> None:
        self.ts = np.empty(size, dtype=np.int64)
        self.values = np.empty(size, dtype=np.float64)
        self.ints = np.empty(size, dtype=np.int64)
        self.exact = np.empty(size, dtype=np.bool_)
        self.scale = np.empty(size, dtype=np.int8)
        self.work = np.empty(size, dtype=np.float64)
        self.codes = np.empty((2, size), dtype=np.int32)
        self.nulls = _nulls(size)

    def tables(
        self, layout: _Layout, bounds: list[tuple[int, int]], words: tuple[_Words, _Words]
    ) -> list[pa.Table]:
        """Encode rows ``bounds[0][0]:bounds[-1][1]`` at once, then build each group's table.

        The batch's timestamps are gathered into one buffer (a memcpy) so that each group's
        ``ts`` column is a single zero-copy slice rather than a chunk per series.
        """
        start = bounds[0][0]
        lo, _, pieces, seg_lengths = layout.segments(start, bounds[-1][1])
        n = int(seg_lengths.sum())
        ts = np.concatenate([p[0] for p in pieces], out=self.ts[:n])
        values = np.concatenate([p[1] for p in pieces], out=self.values[:n])
        seg_starts = np.zeros_like(seg_lengths)
        np.cumsum(seg_lengths[:-1], out=seg_starts[1:])
        ints, exact, scale_rows = encode_values(
            values,
            seg_starts,
            seg_lengths,
            out=(self.ints[:n], self.exact[:n], self.scale[:n], self.work[:n]),
        )
        # Row ends of the batch's segments (relative to ``start``), for cutting groups.
        seg_ends = (seg_starts + seg_lengths).tolist()
        out = []
        k = 0  # the first segment overlapping the current group
        for a, b in bounds:
            i, j = a - start, b - start
            while seg_ends[k] <= i:
                k += 1
            m = k
            while m < len(seg_ends) and seg_ends[m] < j:
                m += 1
            hi = min(m + 1, len(seg_ends))
            # lengths of segments k..hi-1 clipped to the group's rows
            edges = [i, *seg_ends[k : hi - 1], j]
            lengths = [y - x for x, y in itertools.pairwise(edges)]
            out.append(
                self._table(
                    [
                        words[0].column(lo + k, lo + hi, lengths, self.codes[0, i:j]),
                        words[1].column(lo + k, lo + hi, lengths, self.codes[1, i:j]),
                    ],
                    ts[i:j],
                    values[i:j],
                    ints[i:j],
                    exact[i:j],
                    scale_rows[i:j],
                )
            )
        return out

    def _table(
        self,
        word_columns: list[pa.DictionaryArray],
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        ints: npt.NDArray[np.int64],
        exact: npt.NDArray[np.bool_],
        scale_rows: npt.NDArray[np.int8],
    ) -> pa.Table:
        n = values.size
        all_exact = bool(exact.all())
        columns = [
            *word_columns,
            pa.Array.from_buffers(TS_TYPE, n, [None, pa.py_buffer(ts)]),
            (
                pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(ints)])
                if all_exact
                else _masked(pa.int64(), ints, exact, True)
            ),
            pa.Array.from_buffers(pa.int8(), n, [None, pa.py_buffer(scale_rows)]),
            self.nulls.slice(0, n) if all_exact else _masked(pa.float64(), values, exact, False),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


def partition_table(
    series: Mapping[SeriesKey, Arrays], row_group_size: int, *, aligned: bool = False
) -> pa.Table:
    """The rows a partition file holds, as one table (benchmarks and tests use this).

    By default in chunks of exactly ``row_group_size`` rows (each with its own
    dictionaries), so that ``pq.write_table(..., row_group_size=row_group_size)`` keeps
    them dictionary-encoded; ``aligned=True`` gives the backend's own series-aligned chunks.
    """
    tables = list(_Layout.of(series).row_groups(row_group_size, aligned=aligned))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


# -- files ----------------------------------------------------------------------------------


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tables(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    for table in tables:
        writer.write_table(table, table.num_rows)


def _write_file(layout: _Layout, tmp: str, row_group_size: int) -> None:
    with (
        pq.ParquetWriter(tmp, SCHEMA, **WRITE_OPTIONS) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="metricskit-parquet") as pool,
    ):
        # One batch is compressed and written by the helper thread while the next is
        # encoded here; handing over whole batches keeps the two threads from waking
        # each other (and contending for the GIL) once per small row group.
        pending: Future[None] | None = None
        for tables in layout.batches(row_group_size, reuse=True):
            if pending is not None:
                pending.result()
            try:
                pending = pool.submit(_write_tables, writer, tables)
            except RuntimeError:
                # The interpreter is exiting (a Recorder's last flush from atexit): no new
                # threads can start, so this batch is written here instead.
                pending = None
                _write_tables(writer, tables)
        if pending is not None:
            pending.result()
        writer.add_key_value_metadata({INDEX_KEY: pack_index(layout.index(), layout.last_values())})


def write_partition(
    series: Mapping[SeriesKey, Arrays], path: str, *, row_group_size: int, fsync: bool = True
) -> int:
    """Write ``series`` as the file ``path`` so no reader ever sees half of it; return its size.

    The file is written as ``.<name>.<random>.tmp`` beside ``path`` (hidden from pyarrow, pandas
    and DuckDB globs), fsynced, renamed over ``path`` and the directory fsynced.
    """
    directory = os.path.dirname(path)
    layout = _Layout.of(series)
    try:
        with temp_beside(path) as tmp:
            _write_file(layout, tmp, row_group_size)
            if fsync:
                _fsync_path(tmp)
            os.replace(tmp, path)
        if fsync:
            _fsync_path(directory)
        return os.path.getsize(path)
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"writing {path}") from exc
    except pa.ArrowException as exc:
        raise BackendError(f"writing {path}: {exc}") from exc
