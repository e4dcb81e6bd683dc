"""Writing ``parquet://`` files: lossless decimal encoding of values, atomic row-group writes.

A partition's rows are cut into row groups; each is encoded (values scaled to integers,
dictionaries holding only the words that row group uses) while the previous one is being
compressed and written by a helper thread, so on two cores the encoding costs little
wall time. See :mod:`metricskit.storage.parquet_format` for the format itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from metricskit.errors import BackendError, backend_error_from_oserror
from metricskit.model import SeriesKey
from metricskit.storage.parquet_format import (
    INDEX_KEY,
    MAX_SCALE,
    POW10,
    SCHEMA,
    WRITE_OPTIONS,
    Arrays,
    pack_index,
    tags_json,
)

__all__ = ["encode_values", "partition_table", "write_partition"]

_SAMPLE_ROWS = 16
IntArray = npt.NDArray[np.intp]


# -- values: float64 -> (value_int, scale, value) ---------------------------------------


def _row_scales(v: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """Per value, the smallest k with an exact ``rint(v*10**k)/10**k`` (-1 if none)."""
    out = np.full(v.size, -1, dtype=np.int8)
    todo = np.arange(v.size)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(MAX_SCALE + 1):
            if todo.size == 0:
                break
            sub = v[todo]
            ints = np.rint(sub * POW10[k]).astype(np.int64)
            ok = (ints / POW10[k]).view(np.int64) == sub.view(np.int64)
            out[todo[ok]] = k
            todo = todo[~ok]
    return out


def _scaled(
    v: npt.NDArray[np.float64], power: float | npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``rint(v * power)`` and where dividing it by ``power`` gives back ``v``'s exact bits."""
    with np.errstate(invalid="ignore", over="ignore"):
        if isinstance(power, float) and power == 1.0:
            # Integers (counters): truncation equals rounding wherever the check passes.
            ints = v.astype(np.int64)
            exact = ints.astype(np.float64).view(np.int64) == v.view(np.int64)
            return ints, exact
        scaled = np.multiply(v, power)
        np.rint(scaled, out=scaled)
        ints = scaled.astype(np.int64)
        # Compare bits, not floats: -0.0, NaN and out-of-range values must not pass.
        np.divide(ints, power, out=scaled)
        exact = scaled.view(np.int64) == v.view(np.int64)
    return ints, exact


def encode_values(
    v: npt.NDArray[np.float64], starts: IntArray, lengths: IntArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int8]]:
    """Choose one decimal scale per series segment and scale the values losslessly.

    Returns ``(ints, exact, scale_rows)``: rows where ``exact`` is False keep their float.
    The scale is guessed from each segment's first rows, checked on every row, and raised
    only for segments where some row needs more digits than the guess.
    """
    nseg = starts.size
    head_n = np.minimum(lengths, _SAMPLE_ROWS)
    head_owner = np.repeat(np.arange(nseg), head_n)
    head = (
        starts[head_owner]
        + np.arange(head_owner.size)
        - np.repeat(np.cumsum(head_n) - head_n, head_n)
    )
    seg_scale = np.zeros(nseg, dtype=np.int8)
    np.maximum.at(seg_scale, head_owner, _row_scales(v[head]))
    if nseg and seg_scale.min() == seg_scale.max():
        # The common case (one kind of series in the row group): a scalar multiplier.
        ints, exact = _scaled(v, POW10[seg_scale[0]])
    else:
        ints, exact = _scaled(v, np.repeat(POW10[seg_scale], lengths))
    scale_rows = np.repeat(seg_scale, lengths)
    if bool(exact.all()):
        return ints, exact, scale_rows
    misses = np.flatnonzero(~exact)
    owner = np.repeat(np.arange(nseg), lengths)
    needed = seg_scale.copy()
    np.maximum.at(needed, owner[misses], _row_scales(v[misses]))
    raised = needed > seg_scale
    if raised.any():
        rows = np.flatnonzero(raised[owner])
        scale_rows[rows] = needed[owner[rows]]
        ints[rows], exact[rows] = _scaled(v[rows], POW10[scale_rows[rows]])
    return ints, exact, scale_rows


# -- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """A partition's rows sorted by (name, tags, ts): one segment per series.

    The series' arrays are not concatenated up front: each row group gathers its own
    slices, so that work overlaps with the writer thread compressing the previous one.
    """

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

    def row_groups(self, rows: int) -> Iterator[pa.Table]:
        """Encode the rows ``rows`` at a time, one table per row group."""
        total = int(self.lengths.sum())
        ends = self.starts + self.lengths
        for a in range(0, total, rows):
            b = min(a + rows, total)
            lo = int(np.searchsorted(ends, a, side="right"))
            hi = int(np.searchsorted(self.starts, b, side="left"))
            cut_lo = np.maximum(self.starts[lo:hi], a) - self.starts[lo:hi]
            cut_hi = np.minimum(ends[lo:hi], b) - self.starts[lo:hi]
            pieces = [
                (ts[i:j], vs[i:j])
                for (ts, vs), i, j in zip(self.arrays[lo:hi], cut_lo, cut_hi, strict=True)
            ]
            seg_lengths = cut_hi - cut_lo
            seg_starts = np.zeros_like(seg_lengths)
            np.cumsum(seg_lengths[:-1], out=seg_starts[1:])
            yield self._table(pieces, lo, hi, seg_starts, seg_lengths)

    def _table(
        self, pieces: list[Arrays], lo: int, hi: int, seg_starts: IntArray, seg_lengths: IntArray
    ) -> pa.Table:
        ts = np.concatenate([p[0] for p in pieces])
        values = np.concatenate([p[1] for p in pieces])
        ints, exact, scale_rows = encode_values(values, seg_starts, seg_lengths)
        all_exact = bool(exact.all())
        columns = [
            _codes(self.names[lo:hi], seg_lengths),
            _codes(self.tags[lo:hi], seg_lengths),
            pa.array(ts, SCHEMA.field("ts").type),
            pa.array(ints, pa.int64(), mask=None if all_exact else ~exact),
            pa.array(scale_rows, pa.int8()),
            pa.nulls(values.size, pa.float64())
            if all_exact
            else pa.array(values, pa.float64(), mask=exact),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


def _codes(words: list[str], lengths: IntArray) -> pa.DictionaryArray:
    """A dictionary column repeating ``words[i]`` ``lengths[i]`` times (only those words)."""
    unique = sorted(set(words))
    position = {w: i for i, w in enumerate(unique)}
    per_segment = np.fromiter((position[w] for w in words), dtype=np.int32, count=len(words))
    indices = pa.array(np.repeat(per_segment, lengths), pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(unique, pa.string()))


def partition_table(series: Mapping[SeriesKey, Arrays], row_group_size: int) -> pa.Table:
    """The rows a partition file holds, as one table (benchmarks and tests use this)."""
    tables = list(_Layout.of(series).row_groups(row_group_size))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


# -- files ----------------------------------------------------------------------------------


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(layout: _Layout, tmp: str, row_group_size: int) -> None:
    with (
        pq.ParquetWriter(tmp, SCHEMA, **WRITE_OPTIONS) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="metricskit-parquet") as pool,
    ):
        pending: Future[None] | None = None
        for table in layout.row_groups(row_group_size):
            if pending is not None:
                pending.result()
            try:
                pending = pool.submit(writer.write_table, table, row_group_size)
            except RuntimeError:
                # The interpreter is exiting (a Recorder's last flush from atexit): no new
                # threads can start, so this row group is written here instead.
                pending = None
                writer.write_table(table, row_group_size)
        if pending is not None:
            pending.result()
        writer.add_key_value_metadata({INDEX_KEY: pack_index(layout.index())})


def write_partition(
    series: Mapping[SeriesKey, Arrays], path: str, *, row_group_size: int, fsync: bool = True
) -> int:
    """Write ``series`` as the file ``path`` so no reader ever sees half of it; return its size.

    The file is written as ``.<name>.tmp`` beside ``path`` (hidden from pyarrow, pandas
    and DuckDB globs), fsynced, renamed over ``path`` and the directory fsynced.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.tmp")
    layout = _Layout.of(series)
    try:
        try:
            _write_file(layout, tmp, row_group_size)
            if fsync:
                _fsync_path(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        if fsync:
            _fsync_path(directory)
        return os.path.getsize(path)
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"writing {path}") from exc
    except pa.ArrowException as exc:
        raise BackendError(f"writing {path}: {exc}") from exc
