"""``jsonl://``: a directory holding one JSON-lines file per series.

::

    <dir>/
      3f1c...e9.jsonl            one series: a header line, then one [timestamp_ns, value] per line
      .3f1c...e9.jsonl.4711.tmp  a write in progress (hidden; removed when the store is opened)

The first line of a file is the series key, ``{"name": "...", "tags": {...}}``; every other
line is one sample ``[1795046400000000000, 42.5]``, sorted by time, unique timestamps.
Values that JSON cannot spell (NaN, +-inf) are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. The file name is a hash of the key, so any tag value is
safe in it.

How it keeps the :class:`~metricskit.storage.base.StorageBackend` contract:

- ``write`` buffers the batch in memory, where reads see it at once.
- ``flush`` merges each touched series' file with its buffer (the later write of a
  timestamp wins), writes the result to a hidden temp file, fsyncs it, ``os.replace``\\ s it
  over the old file and fsyncs the directory. A crash therefore leaves either the old file
  or the new one, never half of one: that is the durability rule.
- ``delete_before`` rewrites (or removes) the files of the selected series the same way.
- Driver errors (``OSError``, undecodable files) become ``BackendError`` subclasses.

The price of whole-file rewrites is that a flush costs the size of every series it
touches: fine for thousands of samples per series, not for a busy service recording
every second for months (use ``sqlite://`` or ``parquet://`` there). One process writes a
directory at a time (``multiprocess=False``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from metricskit.errors import BackendError, CorruptDataError, backend_error_from_oserror
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage.base import MAX_NS, Capabilities, StorageBackend, StorageStats

__all__ = ["JsonlBackend"]

_SUFFIX = ".jsonl"
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]
_EMPTY: tuple[Int64s, Float64s] = (np.empty(0, np.int64), np.empty(0, np.float64))


def _directory(url: str) -> Path:
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "jsonl" or not sep or not rest:
        raise BackendError(
            f"{url!r}: a jsonl store URL names a directory, "
            "'jsonl:///absolute/dir' or 'jsonl://relative/dir'"
        )
    return Path(rest).expanduser()


def _file_name(key: SeriesKey) -> str:
    canonical = json.dumps([key.name, list(key.tags.items_tuple)])
    return hashlib.sha256(canonical.encode()).hexdigest()[:32] + _SUFFIX


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(value)  # the shortest text that reads back as the same float
    return '"NaN"' if math.isnan(value) else ('"Infinity"' if value > 0 else '"-Infinity"')


class JsonlBackend(StorageBackend):
    """Series as JSON-lines files in one directory; see the module docstring.

    ``fsync=False`` skips the fsyncs (faster, for tests and scratch data): a crash of the
    machine, not just the process, may then lose flushed samples.
    """

    scheme = "jsonl"
    capabilities = Capabilities(persistent=True, deletes=True, multiprocess=False)

    def __init__(self, url: str, *, fsync: bool = True) -> None:
        self.url = url
        self.root = _directory(url)
        self._fsync = fsync
        self._lock = threading.RLock()
        self._pending: dict[SeriesKey, list[tuple[Int64s, Float64s]]] = {}
        self._files: dict[SeriesKey, Path] = {}
        self._closed = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for leftover in self.root.glob(".*.tmp"):
                leftover.unlink()  # a write a crash interrupted; the old file is intact
            for path in sorted(self.root.glob("*" + _SUFFIX)):
                self._files[self._read_header(path)] = path
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"opening {self.root}") from exc

    def __repr__(self) -> str:
        return f"JsonlBackend({self.url!r})"

    # -- files ------------------------------------------------------------------------

    @staticmethod
    def _read_header(path: Path) -> SeriesKey:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            header = json.loads(first)
            return SeriesKey.of(header["name"], header["tags"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"{path}: bad header line: {exc}") from exc

    def _load(self, key: SeriesKey) -> tuple[Int64s, Float64s]:
        path = self._files.get(key)
        if path is None:
            return _EMPTY
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"reading {path}") from exc
        try:
            # one json.loads for the whole file: much faster than one per line
            pairs = json.loads("[" + ",".join(line for line in lines[1:] if line) + "]")
            ts = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
            vs = np.fromiter(
                (_SPECIAL[v] if isinstance(v, str) else v for _, v in pairs),
                dtype=np.float64,
                count=len(pairs),
            )
        except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
            raise CorruptDataError(f"{path}: cannot decode samples: {exc}") from exc
        return ts, vs

    def _replace(self, key: SeriesKey, ts: Int64s, vs: Float64s) -> None:
        """Atomically make ``key``'s file hold exactly these samples (none: remove it)."""
        path = self._files.get(key) or self.root / _file_name(key)
        if not ts.size:
            path.unlink(missing_ok=True)
            self._files.pop(key, None)
            return
        header = json.dumps({"name": key.name, "tags": dict(key.tags.items_tuple)})
        pairs = zip(ts.tolist(), vs.tolist(), strict=True)
        body = "".join(f"[{t},{_number(v)}]\n" for t, v in pairs)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(header + "\n" + body)
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        self._files[key] = path

    def _sync_directory(self) -> None:
        # the renames and unlinks are durable only once the directory itself is synced
        if not self._fsync:
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self!r} is closed")

    # -- the five methods of the contract ---------------------------------------------

    def write(self, batch: Sequence[Series]) -> None:
        """Buffer the batch (visible to reads at once); :meth:`flush` makes it durable."""
        with self._lock:
            self._check_open()
            for series in batch:
                if len(series):
                    # copies: the caller may reuse its arrays after write() returns
                    chunk = (
                        np.array(series.timestamps, dtype=np.int64),
                        np.array(series.values, dtype=np.float64),
                    )
                    self._pending.setdefault(series.key, []).append(chunk)

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """The samples of ``key`` in ``[start_ns, end_ns)``: the file merged with the buffer."""
        with self._lock:
            self._check_open()
            stored = self._load(key)
            pending = self._pending.get(key)
        ts, vs = merge_last_wins([stored, *pending]) if pending else stored
        lo, hi = np.searchsorted(ts, (start_ns, end_ns), side="left")
        return Series(key, ts[lo:hi], vs[lo:hi])

    def keys(self) -> Iterator[SeriesKey]:
        """Series with a file or buffered samples (a snapshot)."""
        with self._lock:
            self._check_open()
            return iter(sorted(self._files.keys() | self._pending.keys()))

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Rewrite each selected file without its samples older than ``cutoff_ns``."""
        removed = 0
        with self._lock:
            self._check_open()
            self._flush_locked()
            try:
                for key in list(self._files):
                    if selector is not None and not selector.matches(key):
                        continue
                    ts, vs = self._load(key)
                    cut = ts.size if cutoff_ns >= MAX_NS else int(np.searchsorted(ts, cutoff_ns))
                    if cut:
                        self._replace(key, ts[cut:], vs[cut:])
                        removed += cut
                self._sync_directory()
            except OSError as exc:
                raise backend_error_from_oserror(exc, f"deleting in {self.root}") from exc
        return removed

    def stats(self) -> StorageStats:
        """Samples and series on disk after a flush; bytes are the files' sizes."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            samples = size = 0
            try:
                for path in self._files.values():
                    data = path.read_bytes()
                    samples += data.count(b"\n") - 1  # every line but the header
                    size += len(data)
            except OSError as exc:
                raise backend_error_from_oserror(exc, f"reading {self.root}") from exc
            return StorageStats(samples=samples, series=len(self._files), bytes=size)

    # -- durability -------------------------------------------------------------------

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        try:
            for key in list(self._pending):
                ts, vs = merge_last_wins([self._load(key), *self._pending[key]])
                self._replace(key, ts, vs)
                # dropped only once its file is replaced: a failed flush keeps the rest
                del self._pending[key]
            self._sync_directory()
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"flushing to {self.root}") from exc

    def flush(self) -> None:
        """Write every buffered series to its file; durable when this returns."""
        with self._lock:
            self._check_open()
            self._flush_locked()

    def close(self) -> None:
        """Flush, then refuse further use; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True

    @classmethod
    def from_url(cls, url: str, **options: Any) -> JsonlBackend:
        """``jsonl:///absolute/dir`` or ``jsonl://relative/dir``; option ``fsync``."""
        return cls(url, **options)
