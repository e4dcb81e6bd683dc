"""``parquet:///abs/dir`` (or ``parquet://relative/dir``): a hive-partitioned Parquet dataset.

Samples are buffered in memory (numpy columns per series) and visible to reads at once;
:meth:`ParquetBackend.flush` writes one new file per touched day partition, atomically
(temp file, fsync, rename, fsync the directory). Files are never modified: last write
wins by file sequence at read time, and compaction merges a partition's files into one
under the partition's ``flock`` so that several processes can share a directory. The
files are plain Parquet that pandas, pyarrow and DuckDB read directly; the format is
documented in ``docs/storage.md`` and :mod:`metricskit.storage._parquet_format`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from metricskit.errors import BackendError, backend_error_from_oserror
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage._parquet_catalog import Catalog
from metricskit.storage._parquet_format import (
    Arrays,
    FileIndex,
    OpenFiles,
    read_series,
)
from metricskit.storage._parquet_layout import (
    DAY_NS,
    DataFile,
    Partition,
    list_files,
    lock_partition,
    new_file_name,
    partition_of_day,
)
from metricskit.storage._parquet_rewrite import Rewriting, tiered_suffix
from metricskit.storage._parquet_snapshot import clear_dirty, mark_dirty
from metricskit.storage._parquet_write import write_partition
from metricskit.storage.base import (
    MAX_NS,
    MIN_NS,
    Capabilities,
    StorageBackend,
    StorageStats,
    key_order,
)

__all__ = ["ParquetBackend"]

_T = TypeVar("_T")
_READ_ATTEMPTS = 20
_PARALLEL_DAYS = 2  # day files a flush writes at once (the machines this runs on: 2+ cores)
_NewFile = tuple[str, dict[SeriesKey, Arrays]]  # a data file's path and its series
_EMPTY: Arrays = (np.empty(0, np.int64), np.empty(0, np.float64))


def root_from_url(url: str) -> str:
    """The directory a ``parquet://`` URL (or a plain path) names, made absolute."""
    rest = url[len("parquet://") :] if url.startswith("parquet://") else url
    if "://" in rest or not rest:
        raise BackendError(
            f"not a parquet URL: {url!r} (use parquet:///absolute/dir or parquet://relative/dir)"
        )
    return os.path.abspath(os.path.expanduser(rest))


class ParquetBackend(Rewriting, StorageBackend):
    """Store series in a Parquet dataset partitioned by day (``day=YYYY-MM-DD``).

    Options: ``max_files_per_partition`` (auto-compaction threshold, default 8),
    ``row_group_size`` (rows, default 131072; smaller makes one-series reads cheaper),
    ``flush_samples`` (buffered samples that trigger a flush after ``write``, default
    2,000,000) and ``fsync`` (default True; False only for throwaway data).
    """

    scheme = "parquet"
    capabilities = Capabilities(persistent=True, deletes=True, multiprocess=True)

    def __init__(
        self,
        url: str,
        *,
        max_files_per_partition: int = 8,
        row_group_size: int = 131_072,
        flush_samples: int = 2_000_000,
        fsync: bool = True,
    ) -> None:
        self.root = root_from_url(url)
        self.max_files_per_partition = max(2, int(max_files_per_partition))
        self.row_group_size = int(row_group_size)
        self.flush_samples = int(flush_samples)
        self.fsync = fsync
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"creating {self.root}") from exc
        self._lock = threading.RLock()
        self._buffer: dict[SeriesKey, list[Arrays]] = {}
        self._buffered = 0
        self._indexes: dict[str, FileIndex] = {}
        self._footer_bytes = 0
        self._open = OpenFiles()
        self._catalog = Catalog(self.root, self._index, fsync=fsync)
        self._closed = False

    def __repr__(self) -> str:
        return f"ParquetBackend('parquet://{self.root}')"

    # -- writing ----------------------------------------------------------------------

    def write(self, batch: Sequence[Series]) -> None:
        """Buffer ``batch`` in memory; reads see it at once, :meth:`flush` makes it durable."""
        with self._lock:
            self._check_open()
            size = sum(len(s) for s in batch)
            # A batch flushed before write() returns needs no private copy of the caller's
            # arrays (for a bulk load that copy costs a sixth of the whole write).
            flush_now = self._buffered + size >= self.flush_samples
            as_array = np.asarray if flush_now else np.array
            for series in batch:
                if len(series):
                    chunk = (
                        as_array(series.timestamps, dtype=np.int64),
                        as_array(series.values, dtype=np.float64),
                    )
                    self._buffer.setdefault(series.key, []).append(chunk)
            self._buffered += size
            if flush_now:
                try:
                    self.flush()
                except BaseException:
                    # Kept for a later flush: now the buffer must own its arrays.
                    for chunks in self._buffer.values():
                        chunks[:] = [(np.array(ts), np.array(vs)) for ts, vs in chunks]
                    raise

    def flush(self) -> None:
        """Write one file per day partition touched since the last flush; durable on return."""
        with self._lock:
            if not self._buffer:
                return
            by_day: dict[int, dict[SeriesKey, Arrays]] = {}
            for key, chunks in self._buffer.items():
                ts, vs = merge_last_wins(chunks)
                for day, part_ts, part_vs in _split_days(ts, vs):
                    by_day.setdefault(day, {})[key] = (part_ts, part_vs)
            days = sorted(by_day)
            for at in range(0, len(days), _PARALLEL_DAYS):
                some = days[at : at + _PARALLEL_DAYS]
                self._commit([(partition_of_day(self.root, d), by_day[d]) for d in some])
            # Only now: if a partition failed above, the buffer still holds everything.
            self._buffer.clear()
            self._buffered = 0

    def _commit(self, parts: list[tuple[Partition, dict[SeriesKey, Arrays]]]) -> None:
        """Add one file to each partition of ``parts`` (a few days, oldest first).

        The files are written in parallel: a flush spanning days (a bulk load of history)
        uses a core per day, where pyarrow's writer would keep one busy. Every partition's
        lock is held meanwhile (taken oldest first; everyone else holds one at a time).
        """
        with contextlib.ExitStack() as locks:
            files: list[_NewFile] = []
            for partition, series in parts:
                locks.enter_context(lock_partition(self.root, partition))
                # Marked before the file lands, unmarked once the key snapshot includes
                # it: a reader trusting the snapshot lists this partition itself meanwhile.
                mark_dirty(self.root, partition, fsync=self.fsync)
                self._make_dir(partition.path)
                name = new_file_name(list_files(partition))
                files.append((os.path.join(partition.path, name), series))
            errors = self._write_files(files)
            for (partition, _), error in zip(parts, errors, strict=True):
                if error is None:
                    self._publish_locked(partition)
            first = next((e for e in errors if e is not None), None)
            if first is not None:
                raise first

    def _write_files(self, files: list[_NewFile]) -> list[BaseException | None]:
        """Write each ``(path, series)`` (in parallel when several); each one's error or None."""

        def write(path: str, series: dict[SeriesKey, Arrays]) -> None:
            write_partition(series, path, row_group_size=self.row_group_size, fsync=self.fsync)

        outcomes: list[BaseException | None] = []
        if len(files) > 1:
            try:
                with ThreadPoolExecutor(len(files), thread_name_prefix="metricskit-flush") as pool:
                    futures = [pool.submit(write, path, series) for path, series in files]
                    return [f.exception() for f in futures]
            except RuntimeError:
                pass  # the interpreter is exiting (atexit flush): no new threads; one by one
        for path, series in files:
            try:
                write(path, series)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _publish_locked(self, partition: Partition) -> None:
        """After a file landed: compact if due, summarize, update the snapshot, unmark."""
        files = list_files(partition)
        if len(files) > self.max_files_per_partition:
            run = tiered_suffix(files, self.max_files_per_partition)
            keys = self._replace_locked(partition, run, self._merge(run))
        else:
            keys = self._summarize_locked(partition)
        # Every key of the partition, not only this flush's: a writer that died here
        # left a dirty mark and a file whose keys the snapshot may not have.
        self._catalog.announce(partition, keys)
        clear_dirty(self.root, partition)

    def _make_dir(self, path: str) -> None:
        if os.path.isdir(path):
            return
        try:
            os.makedirs(path, exist_ok=True)
            if self.fsync:
                fd = os.open(os.path.dirname(path), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"creating {path}") from exc

    # -- reading ------------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], _T]) -> _T:
        """Run a read that lists files; if another process compacted one away, list again."""
        for _ in range(_READ_ATTEMPTS):
            try:
                return fn()
            except FileNotFoundError:
                self._catalog.forget()  # the kept listing is stale: list again
                continue
        raise BackendError(f"{self.root}: files kept disappearing while reading; try again")

    def _read_many(
        self, wanted: Sequence[SeriesKey] | Selector, start_ns: int, end_ns: int
    ) -> tuple[list[SeriesKey], dict[SeriesKey, Arrays]]:
        """The keys ``wanted`` names (or selects) and their samples in the range.

        A selector is resolved from the key snapshot when it is current (else from every
        partition's files), and only the partitions overlapping the range are listed, so
        a recent range costs the same in a new process whatever the history.
        """

        def once() -> tuple[list[SeriesKey], dict[SeriesKey, list[Arrays]]]:
            if isinstance(wanted, Selector):
                keys = self._selected(wanted)
            else:
                keys = list(wanted)
            key_set = set(keys)
            pieces: dict[SeriesKey, list[Arrays]] = {}
            for _, files in self._catalog.in_range(start_ns, end_ns):
                for f in files:
                    index = self._index(f.path)
                    if len(keys) <= len(index.series):
                        candidates: Iterable[SeriesKey] = keys
                    else:
                        candidates = [k for k in index.series if k in key_set]
                    want = [
                        k
                        for k in candidates
                        if (e := index.series.get(k)) is not None
                        and e[3] >= start_ns
                        and e[2] < end_ns
                    ]
                    for key, arrays in read_series(f.path, index, want, self._open).items():
                        pieces.setdefault(key, []).append(arrays)
            return keys, pieces

        with self._lock:
            keys, pieces = self._retrying(once)
            for key in keys:
                chunks = self._buffer.get(key)
                if chunks:
                    if len(chunks) > 1:
                        chunks[:] = [merge_last_wins(chunks)]
                    pieces.setdefault(key, []).append(chunks[0])
        out = {}
        for key, chunks in pieces.items():
            ts, vs = merge_last_wins(chunks)
            lo, hi = np.searchsorted(ts, [start_ns, end_ns], side="left")
            out[key] = (ts[lo:hi], vs[lo:hi])
        return keys, out

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """Return ``key``'s samples in ``[start_ns, end_ns)``, buffered ones included."""
        ts, vs = self._read_many([key], start_ns, end_ns)[1].get(key, _EMPTY)
        return Series(key, ts, vs)

    def query(self, selector: Selector, start_ns: int, end_ns: int) -> Iterator[Series]:
        """Yield the selected non-empty series, reading each file once for all of them."""
        keys, found = self._read_many(selector, start_ns, end_ns)
        for key in keys:
            ts, vs = found.get(key, _EMPTY)
            if ts.size:
                yield Series(key, ts, vs)

    def _selected(self, selector: Selector) -> list[SeriesKey]:
        """The keys ``selector`` matches in the files and the buffer, sorted."""
        index = self._catalog.key_index()
        found = index.select(selector)
        extra = [
            k
            for k, chunks in self._buffer.items()
            if chunks and k not in index.keys and selector.matches(k)
        ]
        if extra:
            found = sorted([*found, *extra], key=key_order)
        return found

    def keys(self) -> Iterator[SeriesKey]:
        """Yield every series with a sample, from the files' footer indexes and the buffer."""
        return self.select(Selector())

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        """Yield the keys ``selector`` matches, sorted, from a cached name/tag index."""
        with self._lock:
            return iter(self._retrying(lambda: self._selected(selector)))

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        """The newest sample in the range, from the newest partition holding one.

        Files' footers give each series' newest timestamp and value, so usually no data
        is read at all; only a partition where ``end_ns`` cuts into the series is read,
        and then just that series' rows of that one day.
        """
        if start_ns >= end_ns:
            return None
        with self._lock:
            self._check_open()
            buffered = None
            chunks = self._buffer.get(key)
            if chunks:
                chunks[:] = [merge_last_wins(chunks)]  # a lone chunk may be unsorted
                buffered = _last_in(chunks[0], start_ns, end_ns)
            stored = self._retrying(lambda: self._last_stored(key, start_ns, end_ns, buffered))
        # the buffer is newer than every file: it wins a tie
        if buffered is None or (stored is not None and stored[0] > buffered[0]):
            return stored
        return buffered

    def _last_stored(
        self, key: SeriesKey, start_ns: int, end_ns: int, newer: tuple[int, float] | None
    ) -> tuple[int, float] | None:
        """Walk back from the key's newest partition, listing only the days it reaches."""
        partitions, files_of = self._catalog.newest_first(key)
        for partition in partitions:
            if partition.start_ns >= end_ns:
                continue
            if partition.end_ns <= start_ns or (newer is not None and partition.end_ns <= newer[0]):
                return None  # older partitions hold nothing in range, or nothing newer
            found = self._last_in_partition(files_of(partition), key, start_ns, end_ns)
            if found is not None:
                return found
        return None

    def _last_in_partition(
        self, files: list[DataFile], key: SeriesKey, start_ns: int, end_ns: int
    ) -> tuple[int, float] | None:
        hits = []
        for f in files:  # oldest first
            index = self._index(f.path)
            entry = index.series.get(key)
            if entry is not None and entry[3] >= start_ns and entry[2] < end_ns:
                hits.append((f, index, entry))
        if not hits:
            return None
        newest = max(entry[3] for _, _, entry in hits)
        if newest < end_ns:
            # A file holding the newest timestamp ends there, so the newest such file wins.
            f, index, entry = next(h for h in reversed(hits) if h[2][3] == newest)
            if index.last is not None:
                return newest, index.last[key]
        pieces = [read_series(f.path, index, [key], self._open)[key] for f, index, _ in hits]
        return _last_in(merge_last_wins(pieces), start_ns, end_ns)

    # -- retention and size -------------------------------------------------------------------

    def stats(self) -> StorageStats:
        """Flush, then count distinct samples, series and bytes on disk."""

        def once() -> StorageStats:
            samples = size = 0
            series: set[SeriesKey] = set()
            for _, files in self._catalog.in_range(MIN_NS, MAX_NS):
                samples += self._count(files, lambda _key: True)
                for f in files:
                    series.update(self._index(f.path).series)
                    size += f.size()
            return StorageStats(samples=samples, series=len(series), bytes=size)

        with self._lock:
            self.flush()
            return self._retrying(once)

    # -- lifecycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self!r} is closed")

    def close(self) -> None:
        """Flush buffered samples; the backend is unusable afterwards."""
        with self._lock:
            if not self._closed:
                self.flush()
                self._open.close()
                self._closed = True


def _last_in(arrays: Arrays, start_ns: int, end_ns: int) -> tuple[int, float] | None:
    """The newest sample of sorted ``arrays`` in ``[start_ns, end_ns)``, or ``None``."""
    ts, vs = arrays
    hi = int(np.searchsorted(ts, end_ns, side="left"))
    if hi == 0 or ts[hi - 1] < start_ns:
        return None
    return int(ts[hi - 1]), float(vs[hi - 1])


def _split_days(
    ts: npt.NDArray[np.int64], vs: npt.NDArray[np.float64]
) -> list[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Cut sorted samples at day boundaries: ``(day, ts, values)`` per day touched."""
    first, last = int(ts[0]) // DAY_NS, int(ts[-1]) // DAY_NS
    if first == last:
        return [(first, ts, vs)]
    days = np.arange(first, last + 2, dtype=np.int64)
    cuts = np.searchsorted(ts, days * DAY_NS)
    return [
        (int(d), ts[a:b], vs[a:b])
        for d, a, b in zip(days[:-1], cuts[:-1], cuts[1:], strict=True)
        if b > a
    ]
