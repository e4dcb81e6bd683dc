"""The on-disk format of the ``parquet://`` backend: one file = one partition's samples.

Columns (rows sorted by ``name``, ``tags``, ``ts``; see ``docs/storage.md``):

=============  ==============================  =============================================
``name``       dictionary<int32, string>       metric name (RLE'd dictionary indices)
``tags``       dictionary<int32, string>       tags as compact JSON, keys sorted
``ts``         timestamp[ns, UTC]              DELTA_BINARY_PACKED
``value_int``  int64, nullable                 the value times ``10**scale`` when that is
                                               exact, DELTA_BINARY_PACKED; else null
``scale``      int8                            one decimal exponent per series and file
``value``      float64, nullable               the value when ``value_int`` is null
=============  ==============================  =============================================

The float value is ``value_int / 10**scale`` if ``value_int`` is not null, else ``value``;
the division is IEEE-exact because the encoder only keeps an integer when that very
division gives back the original bits (so NaN, -0.0, inf and odd floats go to ``value``).

Each file's footer carries a small series index under the key ``metricskit.index``:
JSON ``{"version": 1, "series": [[name, tags_json, first_row, n_rows, min_ts, max_ts], ...]}``
so that ``keys()`` and one-series reads touch the footer and the row groups they need only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metricskit.errors import (
    BackendError,
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
    "FileIndex",
    "decode_rows",
    "encode_table",
    "merge_last_wins",
    "read_index",
    "read_series",
    "tags_json",
    "write_atomic",
]

INDEX_KEY = b"metricskit.index"
MAX_SCALE = 9
_POW10 = 10.0 ** np.arange(MAX_SCALE + 1, dtype=np.float64)
_SAMPLE_ROWS = 16
_VALUE_COLUMNS = ["ts", "value_int", "scale", "value"]
TS_TYPE = pa.timestamp("ns", tz="UTC")

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def tags_json(tags: Tags) -> str:
    """The canonical ``tags`` column text: compact JSON with keys sorted."""
    return json.dumps(dict(tags.items_tuple), separators=(",", ":"), ensure_ascii=False)


def merge_last_wins(chunks: Sequence[Arrays]) -> Arrays:
    """Merge ``(ts, values)`` chunks given oldest first into sorted unique timestamps.

    Where a timestamp repeats, the value from the latest chunk (and within a chunk, the
    latest position) wins.
    """
    if len(chunks) == 1:
        ts, vs = chunks[0]
    else:
        ts = np.concatenate([c[0] for c in chunks])
        vs = np.concatenate([c[1] for c in chunks])
    if ts.size > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, vs = ts[order], vs[order]
        keep = np.empty(ts.size, dtype=bool)
        keep[-1] = True
        np.not_equal(ts[1:], ts[:-1], out=keep[:-1])
        ts, vs = ts[keep], vs[keep]
    return ts, vs


# -- values: float64 <-> (value_int, scale, value) ---------------------------------------


def _row_scales(v: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """Per value, the smallest k with an exact ``round(v*10**k)/10**k`` (-1 if none)."""
    out = np.full(v.size, -1, dtype=np.int8)
    todo = np.arange(v.size)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(MAX_SCALE + 1):
            if todo.size == 0:
                break
            sub = v[todo]
            ints = np.rint(sub * _POW10[k]).astype(np.int64)
            ok = (ints / _POW10[k]).view(np.int64) == sub.view(np.int64)
            out[todo[ok]] = k
            todo = todo[~ok]
    return out


def _scaled(
    v: npt.NDArray[np.float64], scale_rows: npt.NDArray[np.int8]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``rint(v * 10**scale)`` and where decoding it gives back ``v``'s exact bits."""
    pow_rows = _POW10[scale_rows]
    with np.errstate(invalid="ignore", over="ignore"):
        ints = np.rint(v * pow_rows).astype(np.int64)
        exact = (ints / pow_rows).view(np.int64) == v.view(np.int64)
    return ints, exact


def encode_values(
    v: npt.NDArray[np.float64], starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int8]]:
    """Choose one decimal scale per series segment and scale the values losslessly.

    Returns ``(ints, exact, scale_rows)``: rows where ``exact`` is False keep their float.
    The scale is guessed from each segment's first rows, checked on every row, and raised
    only for segments where some row needs more digits than the guess.
    """
    head = np.concatenate(
        [np.arange(s, s + min(n, _SAMPLE_ROWS)) for s, n in zip(starts, lengths, strict=True)]
    )
    head_owner = np.repeat(np.arange(starts.size), np.minimum(lengths, _SAMPLE_ROWS))
    seg_scale = np.zeros(starts.size, dtype=np.int8)
    np.maximum.at(seg_scale, head_owner, _row_scales(v[head]))
    owner = np.repeat(np.arange(starts.size), lengths)
    scale_rows = seg_scale[owner]
    ints, exact = _scaled(v, scale_rows)
    misses = np.flatnonzero(~exact)
    if misses.size:
        needed = seg_scale.copy()
        np.maximum.at(needed, owner[misses], _row_scales(v[misses]))
        raised = needed > seg_scale
        if raised.any():
            rows = np.flatnonzero(raised[owner])
            scale_rows[rows] = needed[owner[rows]]
            ints[rows], exact[rows] = _scaled(v[rows], scale_rows[rows])
    return ints, exact, scale_rows


def decode_values(table: pa.Table) -> npt.NDArray[np.float64]:
    """The float64 values of a table holding ``value_int``, ``scale`` and ``value``."""
    value_int = table.column("value_int")
    scale = table.column("scale").to_numpy()
    if value_int.null_count == 0:
        decoded: npt.NDArray[np.float64] = value_int.to_numpy() / _POW10[scale]
        return decoded
    out = np.array(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = value_int.is_valid().to_numpy(zero_copy_only=False)
    if valid.any():
        ints = value_int.fill_null(0).to_numpy()
        out[valid] = ints[valid] / _POW10[scale[valid]]
    return out


# -- tables -------------------------------------------------------------------------------


def _dictionary(indices: npt.NDArray[np.int32], words: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(words, pa.string()))


def _codes(words: list[str], lengths: npt.NDArray[np.intp]) -> pa.DictionaryArray:
    """A dictionary column repeating ``words[i]`` ``lengths[i]`` times."""
    unique = sorted(set(words))
    position = {w: i for i, w in enumerate(unique)}
    per_segment = np.fromiter((position[w] for w in words), dtype=np.int32, count=len(words))
    return _dictionary(np.repeat(per_segment, lengths), unique)


def encode_table(series: Mapping[SeriesKey, Arrays]) -> pa.Table:
    """Build a partition file's table from sorted, duplicate-free arrays per series."""
    keyed = sorted(((k.name, tags_json(k.tags)), arrays) for k, arrays in series.items())
    keyed = [(nk, arrays) for nk, arrays in keyed if arrays[0].size]
    lengths = np.fromiter((a[0].size for _, a in keyed), dtype=np.intp, count=len(keyed))
    starts = np.zeros(lengths.size, dtype=np.intp)
    np.cumsum(lengths[:-1], out=starts[1:])
    ts = np.concatenate([a[0] for _, a in keyed]) if keyed else np.empty(0, np.int64)
    values = np.concatenate([a[1] for _, a in keyed]) if keyed else np.empty(0, np.float64)
    ints, exact, scale_rows = encode_values(values, starts, lengths)
    index = [
        [name, tags, int(first), int(n), int(a[0][0]), int(a[0][-1])]
        for ((name, tags), a), first, n in zip(keyed, starts, lengths, strict=True)
    ]
    table = pa.table(
        {
            "name": _codes([nk[0] for nk, _ in keyed], lengths),
            "tags": _codes([nk[1] for nk, _ in keyed], lengths),
            "ts": pa.array(ts, TS_TYPE),
            "value_int": pa.array(ints, pa.int64(), mask=~exact),
            "scale": pa.array(scale_rows, pa.int8()),
            "value": pa.array(values, pa.float64(), mask=exact),
        }
    )
    meta = json.dumps({"version": 1, "series": index}, separators=(",", ":"))
    return table.replace_schema_metadata({INDEX_KEY: meta.encode()})


WRITE_OPTIONS: dict[str, object] = {
    "use_dictionary": ["name", "tags", "scale"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value_int": "DELTA_BINARY_PACKED"},
    "compression": "zstd",
    "write_statistics": True,
    "sorting_columns": [pq.SortingColumn(0), pq.SortingColumn(1), pq.SortingColumn(2)],
}
"""``pyarrow.parquet.write_table`` options every file is written with."""


def _fsync_path(path: str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(table: pa.Table, path: str, *, row_group_size: int, fsync: bool = True) -> int:
    """Write ``table`` to ``path`` so that no reader ever sees half a file; return its size.

    The file is written as ``.<name>.tmp`` beside ``path`` (hidden from pyarrow, pandas
    and DuckDB globs), fsynced, renamed over ``path`` and the directory fsynced.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.tmp")
    try:
        try:
            pq.write_table(table, tmp, row_group_size=row_group_size, **WRITE_OPTIONS)
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


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileIndex:
    """What a file's footer says: per series ``(first_row, n_rows, min_ts, max_ts)``."""

    series: dict[SeriesKey, tuple[int, int, int, int]]
    row_group_starts: npt.NDArray[np.int64]
    num_rows: int


_TAGS_CACHE: dict[str, Tags] = {}


def _parse_tags(text: str) -> Tags:
    tags = _TAGS_CACHE.get(text)
    if tags is None:
        tags = validate_tags(json.loads(text))
        if len(_TAGS_CACHE) < 100_000:
            _TAGS_CACHE[text] = tags
    return tags


def _corrupt(path: str, exc: Exception) -> CorruptDataError:
    return CorruptDataError(f"{path}: not a readable metricskit parquet file ({exc})")


def read_index(path: str) -> FileIndex:
    """Read ``path``'s footer; FileNotFoundError passes through (a compaction removed it)."""
    try:
        meta = pq.read_metadata(path)
        raw = (meta.metadata or {}).get(INDEX_KEY)
        if raw is None:
            raise CorruptDataError(f"{path}: parquet file without a metricskit series index")
        doc = json.loads(raw)
        series = {
            SeriesKey(validate_name(name), _parse_tags(tags)): (first, n, lo, hi)
            for name, tags, first, n, lo, hi in doc["series"]
        }
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"reading {path}") from exc
    except (pa.ArrowException, ValueError, KeyError, TypeError) as exc:
        raise _corrupt(path, exc) from exc
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return FileIndex(series, starts, meta.num_rows)


def read_rows(
    path: str, index: FileIndex, spans: Iterable[tuple[int, int]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], dict[int, int]]:
    """Read the row groups covering ``spans`` (``(first_row, n_rows)``) of one file.

    Returns ``(ts, values, offset)``: ``offset[first_row]`` is where that span starts in
    the returned arrays.
    """
    spans = sorted(spans)
    groups: set[int] = set()
    starts = index.row_group_starts
    for first, n in spans:
        lo = int(np.searchsorted(starts, first, side="right")) - 1
        hi = int(np.searchsorted(starts, first + n, side="left"))
        groups.update(range(lo, hi))
    chosen = sorted(groups)
    base = {}
    pos = 0
    for g in chosen:
        base[g] = pos
        pos += int(starts[g + 1] - starts[g])
    try:
        table = pq.ParquetFile(path).read_row_groups(chosen, columns=_VALUE_COLUMNS)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        values = decode_values(table)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"reading {path}") from exc
    except (pa.ArrowException, ValueError) as exc:
        raise _corrupt(path, exc) from exc
    offset = {}
    for first, _ in spans:
        g = int(np.searchsorted(starts, first, side="right")) - 1
        offset[first] = base[g] + first - int(starts[g])
    return ts, values, offset


def read_series(path: str, index: FileIndex, keys: Iterable[SeriesKey]) -> dict[SeriesKey, Arrays]:
    """Read the samples of ``keys`` (those present) from one file."""
    wanted = {k: index.series[k] for k in keys if k in index.series}
    if not wanted:
        return {}
    ts, values, offset = read_rows(path, index, [(e[0], e[1]) for e in wanted.values()])
    out = {}
    for key, (first, n, _, _) in wanted.items():
        at = offset[first]
        out[key] = (ts[at : at + n], values[at : at + n])
    return out


def decode_rows(path: str, index: FileIndex) -> dict[SeriesKey, Arrays]:
    """Read every series of one file."""
    return read_series(path, index, index.series)
