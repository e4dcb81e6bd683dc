"""Rewriting a ``parquet://`` store's partitions: compaction and retention.

Files are never modified: a rewrite writes the replacement file first and removes the
old ones after, under the partition's lock, and publishes the change through the key
snapshot (see :mod:`._parquet_catalog`). :class:`Rewriting` is the part of
:class:`~metricskit.storage.parquet.ParquetBackend` that does it, along with the footer
index cache every reader and rewriter uses.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from metricskit.errors import backend_error_from_oserror
from metricskit.model import Selector, SeriesKey
from metricskit.storage._merge import merge_last_wins
from metricskit.storage._parquet_catalog import Catalog
from metricskit.storage._parquet_format import (
    Arrays,
    FileIndex,
    OpenFiles,
    decode_rows,
    read_index,
    read_series,
    tags_json,
)
from metricskit.storage._parquet_layout import (
    DataFile,
    Partition,
    list_files,
    list_partitions,
    lock_partition,
    new_file_name,
    remove_summary,
    write_summary,
)
from metricskit.storage._parquet_write import write_partition

__all__ = ["Rewriting", "tiered_suffix"]

_MAX_CACHED_INDEXES = 50_000
_MAX_CACHED_FOOTER_BYTES = 64 * 2**20  # serialized; parsed footers take a few times that


class Rewriting(abc.ABC):
    """Compaction, retention and the footer index cache of a ``parquet://`` backend."""

    root: str
    row_group_size: int
    fsync: bool
    _lock: threading.RLock
    _open: OpenFiles
    _catalog: Catalog
    _indexes: dict[str, FileIndex]
    _footer_bytes: int

    @abc.abstractmethod
    def flush(self) -> None:
        """Write the buffered samples (rewrites start from what is on disk)."""

    @abc.abstractmethod
    def _check_open(self) -> None: ...

    def _index(self, path: str) -> FileIndex:
        index = self._indexes.get(path)
        if index is None:
            if (
                len(self._indexes) >= _MAX_CACHED_INDEXES
                or self._footer_bytes >= _MAX_CACHED_FOOTER_BYTES
            ):
                self._indexes.clear()
                self._footer_bytes = 0
            index = self._indexes[path] = read_index(path)
            self._footer_bytes += index.metadata.serialized_size
        return index

    def _summarize_locked(self, partition: Partition) -> set[SeriesKey]:
        """Rewrite the partition's ``_series.json`` from its files' footers; return its keys."""
        files = list_files(partition)
        keys = {k for f in files for k in self._index(f.path).series}
        rows = sorted([k.name, tags_json(k.tags)] for k in keys)
        write_summary(partition, files, rows)
        return keys

    def compact(self) -> int:
        """Flush, then merge every partition's files into one; return files removed."""
        with self._lock:
            self.flush()
            removed = 0
            for partition in list_partitions(self.root):
                with lock_partition(self.root, partition):
                    files = list_files(partition)
                    if len(files) > 1:
                        keys = self._replace_locked(partition, files, self._merge(files))
                        self._catalog.announce(partition, keys)
                        removed += len(files) - 1
            return removed

    def _merge(self, files: Sequence[DataFile]) -> dict[SeriesKey, Arrays]:
        """Every series of ``files`` (oldest first) with duplicates resolved."""
        pieces: dict[SeriesKey, list[Arrays]] = {}
        for f in files:
            for key, arrays in decode_rows(f.path, self._index(f.path), self._open).items():
                pieces.setdefault(key, []).append(arrays)
        return {key: merge_last_wins(chunks) for key, chunks in pieces.items()}

    def _replace_locked(
        self, partition: Partition, old: Sequence[DataFile], data: dict[SeriesKey, Arrays]
    ) -> set[SeriesKey]:
        """Replace the newest-ending run ``old`` of a partition's files by one holding ``data``;
        return the keys the partition holds afterwards.

        The new file takes the newest old file's sequence and a higher level, so it sorts
        exactly where the run did; it is in place before the old files go away, so a
        reader never misses a sample (at worst it sees equal duplicates).
        """
        data = {k: a for k, a in data.items() if a[0].size}
        if data:
            level = min(99, max(f.level for f in old) + 1)
            name = new_file_name([], level=level, seq=old[-1].seq)
            write_partition(
                data,
                os.path.join(partition.path, name),
                row_group_size=self.row_group_size,
                fsync=self.fsync,
            )
        try:
            for f in old:
                self._open.drop(f.path)
                os.unlink(f.path)
                self._indexes.pop(f.path, None)
            for name in os.listdir(partition.path):
                if name.startswith(".") and name.endswith(".tmp"):
                    os.unlink(os.path.join(partition.path, name))  # a crashed write's leftover
            if not data and not list_files(partition):
                remove_summary(partition)
                with contextlib.suppress(OSError):
                    os.rmdir(partition.path)
                return set()
            return self._summarize_locked(partition)
        except OSError as exc:
            raise backend_error_from_oserror(exc, f"compacting {partition.path}") from exc

    def _count(self, files: Sequence[DataFile], keep: Callable[[SeriesKey], bool]) -> int:
        """Distinct samples of the kept series in ``files``, resolving cross-file repeats."""
        owners: dict[SeriesKey, list[DataFile]] = {}
        total = 0
        for f in files:
            for key, entry in self._index(f.path).series.items():
                if keep(key):
                    owners.setdefault(key, []).append(f)
                    total += entry[1]
        repeated = {k: fs for k, fs in owners.items() if len(fs) > 1}
        if repeated:
            pieces: dict[SeriesKey, list[Arrays]] = {}
            for f in files:
                for key, arrays in read_series(
                    f.path, self._index(f.path), repeated, self._open
                ).items():
                    pieces.setdefault(key, []).append(arrays)
            for chunks in pieces.values():
                total -= sum(c[0].size for c in chunks) - merge_last_wins(chunks)[0].size
        return total

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Flush, then delete the selected samples older than ``cutoff_ns``; return how many.

        Day partitions entirely before the cutoff are dropped as a whole (without a
        selector); the partition straddling it, or any partition holding selected
        series, is rewritten without the deleted rows.
        """

        def selected(key: SeriesKey) -> bool:
            return selector is None or selector.matches(key)

        with self._lock:
            self._check_open()
            self.flush()
            removed = 0
            changed = False
            for partition in list_partitions(self.root):
                if partition.start_ns >= cutoff_ns:
                    continue
                with lock_partition(self.root, partition):
                    files = list_files(partition)
                    if selector is None and partition.end_ns <= cutoff_ns:
                        removed += self._count(files, selected)
                        kept: dict[SeriesKey, Arrays] = {}
                    else:
                        kept, cut = self._kept_after(files, cutoff_ns, selected)
                        if not cut:
                            continue
                        removed += cut
                    # Keys may vanish: no reader may trust the key snapshot from here on,
                    # and the token changes again once the files did (for listings).
                    self._catalog.invalidate()
                    self._replace_locked(partition, files, kept)
                    self._catalog.invalidate()
                    changed = True
            if changed:
                self._catalog.announce(None, ())  # one rebuild of the snapshot, not one a day
            return removed

    def _kept_after(
        self, files: Sequence[DataFile], cutoff_ns: int, selected: Callable[[SeriesKey], bool]
    ) -> tuple[dict[SeriesKey, Arrays], int]:
        """The partition's samples minus the selected ones before the cutoff, and how many
        those were (0: the partition need not be rewritten)."""
        touched = any(
            selected(key) and entry[2] < cutoff_ns
            for f in files
            for key, entry in self._index(f.path).series.items()
        )
        kept: dict[SeriesKey, Arrays] = {}
        if not touched:
            return kept, 0
        removed = 0
        for key, (ts, vs) in self._merge(files).items():
            cut = int(np.searchsorted(ts, cutoff_ns)) if selected(key) else 0
            removed += cut
            kept[key] = (ts[cut:], vs[cut:])
        return kept, removed


def tiered_suffix(files: list[DataFile], limit: int) -> list[DataFile]:
    """The newest run of files to merge: small files, not the big ones merged earlier.

    Walking from the newest file back, an older file joins while it is no bigger than
    twice what is gathered so far, which keeps total rewriting logarithmic in the
    partition's size; if that would still leave more than ``limit`` files, merge all.
    """
    gathered = files[-1].size()
    start = len(files) - 1
    while start > 0 and files[start - 1].size() <= 2 * gathered:
        start -= 1
        gathered += files[start].size()
    if start + 1 > limit - 1 or len(files) - start < 2:
        start = 0
    return files[start:]
