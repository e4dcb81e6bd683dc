"""The on-disk format of the ``parquet://`` backend: one file = one partition's samples.

Columns (rows sorted by ``name``, ``tags``, ``ts``; see ``docs/storage.md``):

=============  ==============================  =============================================
``name``       dictionary<int32, string>       metric name (RLE'd dictionary indices)
``tags``       dictionary<int32, string>       tags as compact JSON, keys sorted
``ts``         timestamp[ns, UTC]              DELTA_BINARY_PACKED
``value_int``  int64, nullable                 the value times ``10**scale`` when that is
                                               exact, DELTA_BINARY_PACKED; else null
``scale``      int8                            one decimal exponent per series and row group
``value``      float64, nullable               the value when ``value_int`` is null
=============  ==============================  =============================================

The float value is ``value_int / 10**scale`` if ``value_int`` is not null, else ``value``;
the division is IEEE-exact because the encoder only keeps an integer when that very
division gives back the original bits (so NaN, -0.0, inf and odd floats go to ``value``).

Each file's footer carries a small series index under the key ``metricskit.index``:
base64 of zlib of JSON ``{"version": 1, "series": [[name, tags_json, first_row, n_rows,
min_ts, max_ts], ...], "last": [value_at_max_ts, ...]}`` (compressed: plain JSON costs
~130 bytes per series; ``last`` is absent in files written before it existed), so that
``keys()``, ``last()`` and one-series reads touch the footer and the row groups they
need only. Row groups end at series boundaries (see ``parquet_write``), and every page
carries a CRC32 that reads verify, so a flipped byte raises ``CorruptDataError``.
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from metricskit.errors import (
    BackendImportError,
    CorruptDataError,
    backend_error_from_oserror,
)
from metricskit.model import SeriesKey, Tags, validate_name, validate_tags

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - exercised only without pyarrow installed
    raise BackendImportError(
        "the parquet:// backend needs pyarrow: pip install 'metricskit[parquet]'"
    ) from exc

__all__ = [
    "INDEX_KEY",
    "MAX_SCALE",
    "POW10",
    "SCHEMA",
    "TS_TYPE",
    "WORDS_TYPE",
    "WRITE_OPTIONS",
    "Arrays",
    "FileIndex",
    "OpenFiles",
    "decode_rows",
    "decode_values",
    "key_of",
    "pack_index",
    "read_index",
    "read_series",
    "tags_json",
]

INDEX_KEY = b"metricskit.index"
MAX_SCALE = 9
POW10 = 10.0 ** np.arange(MAX_SCALE + 1, dtype=np.float64)
_VALUE_COLUMNS = ["ts", "value_int", "scale", "value"]
_VALUE_INT_COLUMN = 3
_THREADED_READ_ROWS = 131_072
TS_TYPE = pa.timestamp("ns", tz="UTC")
WORDS_TYPE = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema(
    [
        ("name", WORDS_TYPE),
        ("tags", WORDS_TYPE),
        ("ts", TS_TYPE),
        ("value_int", pa.int64()),
        ("scale", pa.int8()),
        ("value", pa.float64()),
    ]
)
"""The Arrow schema of every data file."""

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


@functools.lru_cache(maxsize=65_536)
def tags_json(tags: Tags) -> str:
    """The canonical ``tags`` column text: compact JSON with keys sorted."""
    return json.dumps(dict(tags.items_tuple), separators=(",", ":"), ensure_ascii=False)


# -- values -------------------------------------------------------------------------------


def _numbers(column: pa.ChunkedArray, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A fixed-width column's data buffer as numpy (null slots hold whatever is there).

    Read from the buffers rather than with ``to_numpy``, which imports pandas (to check
    for time zones and pandas types): that cost a process's first read half a second.
    """
    size = np.dtype(dtype).itemsize
    chunks = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * size)
        for c in column.chunks
    ]
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)


def _valid(column: pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """Where ``column`` is not null (see :func:`_numbers` for why not ``to_numpy``)."""
    parts = []
    for c in column.chunks:
        bitmap = c.buffers()[0]
        if c.null_count == 0 or bitmap is None:
            parts.append(np.ones(len(c), dtype=np.bool_))
        else:
            bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
            parts.append(bits[c.offset : c.offset + len(c)].astype(np.bool_))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.bool_)


def decode_values(table: pa.Table) -> npt.NDArray[np.float64]:
    """The float64 values of a table holding ``value_int``, ``scale`` and ``value``.

    ``value`` may be left out when ``value_int`` has no null.
    """
    value_int = table.column("value_int")
    scale = _numbers(table.column("scale"), np.int8)
    least, most = (int(scale.min()), int(scale.max())) if scale.size else (0, 0)
    if least < 0 or most > MAX_SCALE:
        raise ValueError(f"decimal scale outside 0..{MAX_SCALE}")
    ints = _numbers(value_int, np.int64)
    if value_int.null_count == 0:
        # one series' rows (a one-series read) share one scale: divide by a scalar
        divisor = POW10[least] if least == most else POW10[scale]
        decoded: npt.NDArray[np.float64] = ints / divisor
        return decoded
    out = np.array(_numbers(table.column("value"), np.float64), dtype=np.float64)
    valid = _valid(value_int)
    if valid.any():
        out[valid] = ints[valid] / POW10[scale[valid]]
    return out


WRITE_OPTIONS: dict[str, object] = {
    "use_dictionary": ["name", "tags", "scale"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value_int": "DELTA_BINARY_PACKED"},
    # zstd where it pays: a row group's name and scale pages are a few
    # bytes of RLE'd indices, and compressing them cost a tenth of the write once row
    # groups became series-aligned (ten times as many column chunks).
    "compression": {
        "name": "none",
        "tags": "zstd",
        "ts": "zstd",
        "value_int": "zstd",
        "scale": "none",
        "value": "zstd",
    },
    # Statistics where a reader uses them: name and ts for other engines' pruning,
    # value_int's null count for ours (see FileIndex.all_exact). Min/max of the tags
    # strings cost a third of the write and prune nothing a name filter does not.
    "write_statistics": ["name", "ts", "value_int"],
    "write_page_checksum": True,
    "sorting_columns": [pq.SortingColumn(0), pq.SortingColumn(1), pq.SortingColumn(2)],
}
"""``pyarrow.parquet.ParquetWriter`` options every file is written with."""


def pack_index(series: list[list[object]], last: list[float]) -> bytes:
    """The footer value of :data:`INDEX_KEY` for ``[[name, tags, first, n, lo, hi], ...]``.

    ``last[i]`` is series ``i``'s value at its newest timestamp (NaN and inf are written
    as JSON's ``NaN``/``Infinity`` extensions, which Python's json reads back).
    """
    doc = {"version": 1, "series": series, "last": last}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6))


def _unpack(packed: bytes) -> Any:
    return json.loads(zlib.decompress(base64.b64decode(packed)))


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileIndex:
    """What a file's footer says: per series ``(first_row, n_rows, min_ts, max_ts)``.

    ``last`` maps each series to its value at ``max_ts`` (``None`` for files written
    before the index carried it); ``metadata`` is the parsed footer, kept so that a read
    does not parse it again (a file has a row group per few series: that footer is big).
    """

    series: dict[SeriesKey, tuple[int, int, int, int]]
    row_group_starts: npt.NDArray[np.int64]
    num_rows: int
    last: dict[SeriesKey, float] | None
    metadata: pq.FileMetaData
    _exact_groups: dict[int, bool] = field(default_factory=dict, compare=False, repr=False)

    def all_exact(self, groups: Iterable[int]) -> bool:
        """True if the footer's statistics say ``value_int`` has no null in ``groups``.

        Then the ``value`` column need not be read. The statistics are only a hint: a
        null found after all (a damaged footer) makes the reader read ``value`` too.
        """
        for g in groups:
            exact = self._exact_groups.get(g)
            if exact is None:
                stats = self.metadata.row_group(g).column(_VALUE_INT_COLUMN).statistics
                exact = stats is not None and stats.has_null_count and stats.null_count == 0
                self._exact_groups[g] = exact
            if not exact:
                return False
        return True


_TAGS_CACHE: dict[str, Tags] = {}


def _parse_tags(text: str) -> Tags:
    tags = _TAGS_CACHE.get(text)
    if tags is None:
        tags = validate_tags(json.loads(text))
        if len(_TAGS_CACHE) < 100_000:
            _TAGS_CACHE[text] = tags
    return tags


@functools.lru_cache(maxsize=65_536)
def key_of(name: str, tags: str) -> SeriesKey:
    """The series key of an index row's ``name`` and ``tags`` (JSON) columns, validated.

    Cached: the same series appears in every day's files and summaries.
    """
    return SeriesKey(validate_name(name), _parse_tags(tags))


def _corrupt(path: str, exc: Exception | str) -> CorruptDataError:
    return CorruptDataError(f"{path}: not a readable metricskit parquet file ({exc})")


def _translated(path: str, exc: Exception) -> Exception:
    """The error to raise for ``exc`` met while decoding ``path``.

    pyarrow raises ``OSError`` without an errno (its ``ArrowIOError``) for undecodable
    bytes (a bad thrift footer, a failed page checksum, a truncated stream): that is
    corruption, whereas an ``OSError`` carrying an errno is the operating system's.
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        return backend_error_from_oserror(exc, f"reading {path}")
    return _corrupt(path, exc)


_DECODE_ERRORS = (
    OSError,
    pa.ArrowException,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    zlib.error,
)


def _index_from(path: str, meta: pq.FileMetaData) -> FileIndex:
    raw = (meta.metadata or {}).get(INDEX_KEY)
    if raw is None:
        raise CorruptDataError(f"{path}: parquet file without a metricskit series index")
    doc = _unpack(raw)
    rows = doc["series"]
    series = {
        key_of(name, tags): (int(first), int(n), int(lo), int(hi))
        for name, tags, first, n, lo, hi in rows
    }
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    num_rows = int(starts[-1])
    for first, n, lo, hi in series.values():
        if first < 0 or n < 1 or first + n > num_rows or lo > hi:
            raise _corrupt(path, "series index does not fit the file's rows")
    last_values = doc.get("last")
    last = None
    if last_values is not None:
        if len(last_values) != len(rows):
            raise _corrupt(path, "series index and last values differ in length")
        last = {k: float(v) for k, v in zip(series, last_values, strict=True)}
    return FileIndex(series, starts, num_rows, last, meta)


def read_index(path: str) -> FileIndex:
    """Read ``path``'s footer; FileNotFoundError passes through (a compaction removed it)."""
    try:
        return _index_from(path, pq.read_metadata(path))
    except (FileNotFoundError, CorruptDataError):
        raise
    except _DECODE_ERRORS as exc:
        raise _translated(path, exc) from exc


class OpenFiles:
    """The few data files read most recently, kept open (not thread-safe: callers lock).

    Opening a ``ParquetFile`` costs about as much as decoding a small row group, so
    repeated one-series reads keep their handles. Files are immutable; a file another
    process compacted away stays readable through its handle and is never listed again,
    so it only waits here for eviction.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._files: dict[str, pq.ParquetFile] = {}

    def get(self, path: str, index: FileIndex) -> pq.ParquetFile:
        """The open handle of ``path`` (opened with the footer ``index`` already parsed)."""
        handle = self._files.pop(path, None)
        if handle is None:
            # No pre-buffering: these reads are a few small row groups, where coalescing
            # I/O costs more than it saves. Page CRCs are verified: a flip is an error.
            handle = pq.ParquetFile(
                path, metadata=index.metadata, pre_buffer=False, page_checksum_verification=True
            )
            if len(self._files) >= self.size:
                self.drop(next(iter(self._files)))
        self._files[path] = handle  # most recent last
        return handle

    def drop(self, path: str) -> None:
        """Close ``path``'s handle if it is open."""
        handle = self._files.pop(path, None)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        """Close every handle."""
        for path in list(self._files):
            self.drop(path)


def read_rows(
    path: str,
    index: FileIndex,
    spans: Iterable[tuple[int, int]],
    files: OpenFiles | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], dict[int, int]]:
    """Read the row groups covering ``spans`` (``(first_row, n_rows)``) of one file.

    Returns ``(ts, values, offset)``: ``offset[first_row]`` is where that span starts in
    the returned arrays. ``files`` keeps handles open between calls.
    """
    spans = sorted(spans)
    starts = index.row_group_starts
    firsts = np.fromiter((f for f, _ in spans), dtype=np.int64, count=len(spans))
    lasts = firsts + np.fromiter((n for _, n in spans), dtype=np.int64, count=len(spans))
    lo = np.searchsorted(starts, firsts, side="right") - 1
    hi = np.searchsorted(starts, lasts, side="left")
    if len(spans) == 1:
        chosen = list(range(int(lo[0]), int(hi[0])))
    else:
        chosen = sorted(
            {g for a, b in zip(lo.tolist(), hi.tolist(), strict=True) for g in range(a, b)}
        )
    sizes = starts[1:] - starts[:-1]
    base = dict(zip(chosen, (np.cumsum(sizes[chosen]) - sizes[chosen]).tolist(), strict=True))
    rows = int(sizes[chosen].sum())
    try:
        handle = (files or OpenFiles(0)).get(path, index)
        # Threads only for big reads: for a few small row groups (one series) a thread
        # pool costs more than it saves.
        threads = rows > _THREADED_READ_ROWS
        columns = _VALUE_COLUMNS[:3] if index.all_exact(chosen) else _VALUE_COLUMNS
        table = handle.read_row_groups(chosen, columns=columns, use_threads=threads)
        if table.num_columns < len(_VALUE_COLUMNS) and table.column("value_int").null_count:
            table = handle.read_row_groups(chosen, columns=_VALUE_COLUMNS, use_threads=threads)
        if files is None:
            handle.close()
        if table.num_rows != rows:
            raise _corrupt(path, f"read {table.num_rows} rows, the footer says {rows}")
        ts = _numbers(table.column("ts"), np.int64)
        values = decode_values(table)
    except (FileNotFoundError, CorruptDataError):
        raise
    except _DECODE_ERRORS as exc:
        raise _translated(path, exc) from exc
    offset = {
        first: base[g] + first - int(starts[g])
        for first, g in zip(firsts.tolist(), lo.tolist(), strict=True)
    }
    return ts, values, offset


def read_series(
    path: str, index: FileIndex, keys: Iterable[SeriesKey], files: OpenFiles | None = None
) -> dict[SeriesKey, Arrays]:
    """Read the samples of ``keys`` (those present) from one file."""
    wanted = {k: index.series[k] for k in keys if k in index.series}
    if not wanted:
        return {}
    spans = [(e[0], e[1]) for e in wanted.values()]
    ts, values, offset = read_rows(path, index, spans, files)
    out = {}
    for key, (first, n, lo, hi) in wanted.items():
        at = offset[first]
        span = ts[at : at + n]
        # what page checksums cannot vouch for (the footer's own bytes) is checked here
        if span[0] != lo or span[-1] != hi or (n > 1 and not bool(np.all(span[1:] > span[:-1]))):
            raise _corrupt(path, f"timestamps of {key} disagree with the series index")
        out[key] = (span, values[at : at + n])
    return out


def decode_rows(
    path: str, index: FileIndex, files: OpenFiles | None = None
) -> dict[SeriesKey, Arrays]:
    """Read every series of one file."""
    return read_series(path, index, index.series, files)
