"""Where a ``parquet://`` store's series are: its partitions, their files and keys.

Everything here is cached per generation token (see :mod:`._parquet_layout`), and a
process that opens a store with a current key snapshot (see :mod:`._parquet_snapshot`)
learns every key, and the newest day of each, from one file: ``select`` and ``last``
then cost the same at one day of history and at a year.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from metricskit.model import SeriesKey
from metricskit.storage._parquet_format import FileIndex, key_of
from metricskit.storage._parquet_layout import (
    DataFile,
    FileSizes,
    Partition,
    bump_generation,
    file_sizes,
    generation,
    list_files,
    list_partitions,
    partition_of_day,
    read_summary,
)
from metricskit.storage._parquet_snapshot import (
    Snapshot,
    dirty_days,
    lock_root,
    read_snapshot,
    write_snapshot,
)
from metricskit.storage.base import KeyIndex

__all__ = ["Catalog", "Listing"]

Listing = list[tuple[Partition, list[DataFile]]]
FilesOf = Callable[[Partition], list[DataFile]]
"""A current key snapshot and the days marked dirty, or ``None``."""


@dataclass
class _View:
    """What this process learned about the store under one generation token.

    Filled lazily: ``last()`` lists the newest partition only, ``select()`` reads the
    snapshot only, a range read lists every partition once.
    """

    token: str | None
    partitions: list[Partition] | None = None  # oldest first
    files: dict[Partition, list[DataFile]] = field(default_factory=dict)
    # (snapshot or None, dirty days) once read
    snapshot: tuple[Snapshot | None, list[int]] | None = None

    def partition_list(self, root: str) -> list[Partition]:
        if self.partitions is None:
            self.partitions = list_partitions(root)
        return self.partitions

    def files_of(self, partition: Partition) -> list[DataFile]:
        found = self.files.get(partition)
        if found is None:
            found = self.files[partition] = list_files(partition)
        return found


class Catalog:
    """The partitions, files and keys of the store at ``root``, cached per generation.

    A process keeps what it listed while the root's generation token is unchanged (a
    writer that dies between committing a file and replacing the token leaves such a
    process blind to that file until the next change; a new process sees it). ``index``
    gives a file's footer index (the backend caches those). Not thread-safe: the backend
    calls it under its lock.
    """

    def __init__(self, root: str, index: Callable[[str], FileIndex], *, fsync: bool) -> None:
        self.root = root
        self.fsync = fsync
        self._index = index
        self._view = _View(None)
        # the key index and what it was built from (a file list or a snapshot state)
        self._key_index: tuple[object, KeyIndex] = ((), KeyIndex(()))
        # each partition's keys, with the file names and sizes they were read for
        self._summaries: dict[str, tuple[FileSizes, set[SeriesKey]]] = {}
        self._snapshot: Snapshot | None = None  # the last one read or written

    def _current(self) -> _View:
        """The view of the current token (the token is read before anything is listed, so
        a change made while listing shows up as a new token at the next call)."""
        token = generation(self.root)
        if token is None or token != self._view.token:
            self._view = _View(token)
        return self._view

    def forget(self) -> None:
        """Drop what was listed (a file in it has gone: another process compacted)."""
        self._view = _View(None)

    # -- listing ----------------------------------------------------------------------

    def listing(self) -> Listing:
        """Every partition and its files, oldest first."""
        view = self._current()
        return [(p, view.files_of(p)) for p in view.partition_list(self.root)]

    def in_range(self, start_ns: int, end_ns: int) -> Listing:
        """The partitions overlapping ``[start_ns, end_ns)`` and their files."""
        view = self._current()
        return [
            (p, view.files_of(p))
            for p in view.partition_list(self.root)
            if p.end_ns > start_ns and p.start_ns < end_ns
        ]

    def newest_first(self, key: SeriesKey) -> tuple[Iterator[Partition], FilesOf]:
        """The partitions that may hold ``key``, newest first, and a function listing one's
        files on demand.

        With a current key snapshot, the walk starts at the key's newest day (and the
        days writers are changing): ``last()`` then lists one directory however many days
        of history there are. Without one, it starts at the newest partition.
        """
        view = self._current()
        snap, dirty = self._snapshot_of(view)
        return self._walk(view, key, snap, dirty), view.files_of

    def _walk(
        self, view: _View, key: SeriesKey, snap: Snapshot | None, dirty: list[int]
    ) -> Iterator[Partition]:
        if snap is None:
            yield from reversed(view.partition_list(self.root))
            return
        newest = snap.newest.get(key)
        first = {d for d in dirty if newest is None or d > newest}
        if newest is not None:
            first.add(newest)
        for day in sorted(first, reverse=True):
            yield self._partition(day)
        if newest is not None:
            # older days only when the newest held nothing in the range asked for
            for partition in reversed(view.partition_list(self.root)):
                if partition.day < newest and partition.day not in first:
                    yield partition

    def _snapshot_of(self, view: _View) -> tuple[Snapshot | None, list[int]]:
        """The view's key snapshot and dirty days, read once per token.

        The dirty days are read after the snapshot: a partition marked after that holds a
        change the caller may miss, like any change made after it asked.
        """
        if view.snapshot is None:
            snap = read_snapshot(self.root, view.token, self._snapshot)
            if snap is not None:
                self._snapshot = snap
            view.snapshot = (snap, dirty_days(self.root) if snap is not None else [])
        return view.snapshot

    # -- keys ---------------------------------------------------------------------------

    def key_index(self) -> KeyIndex:
        """Every stored key, from the snapshot if it is current, else from every partition.

        The index is rebuilt only when what it is built from changed.
        """
        view = self._current()
        snap, days = self._snapshot_of(view)
        if snap is not None:
            dirty = [(p, view.files_of(p)) for p in map(self._partition, days)]
            token: object = (snap.token, tuple(f.path for _, files in dirty for f in files))
        else:
            dirty = self.listing()
            token = tuple(f.path for _, files in dirty for f in files)
        if token != self._key_index[0]:
            keys = set(snap.newest) if snap is not None else set()
            for partition, files in dirty:
                keys.update(self.partition_keys(partition, files))
            self._key_index = (token, KeyIndex(keys))
        return self._key_index[1]

    def partition_keys(self, partition: Partition, files: list[DataFile]) -> set[SeriesKey]:
        """The partition's keys: from its summary when that lists exactly ``files``."""
        names = file_sizes(files)
        known = self._summaries.get(partition.path)
        if known is not None and known[0] == names:
            return known[1]
        summary = read_summary(partition)
        keys: set[SeriesKey] = set()
        if summary is not None and summary[0] == names:
            try:
                keys = {key_of(name, tags) for name, tags in summary[1]}
            except (ValueError, TypeError):
                summary = None  # a damaged summary: the footers say the same
        if summary is None or summary[0] != names:
            keys = {k for f in files for k in self._index(f.path).series}
        self._summaries[partition.path] = (names, keys)
        return keys

    def _partition(self, day: int) -> Partition:
        return partition_of_day(self.root, day)

    # -- announcing changes (writers) ----------------------------------------------------

    def announce(self, partition: Partition | None, added: Iterable[SeriesKey]) -> None:
        """Publish a change: ``added`` keys now have samples in ``partition``.

        Under the root lock, the snapshot gets the keys (or is rebuilt from every
        partition if it was not current) and a new generation token. ``partition=None``
        only rebuilds it (after deletions).
        """
        with lock_root(self.root):
            current = read_snapshot(self.root, generation(self.root), self._snapshot)
            if current is None:
                newest = self._newest_days()
            else:
                newest = dict(current.newest)
                if partition is not None:
                    for key in added:
                        if newest.get(key, partition.day) <= partition.day:
                            newest[key] = partition.day
            token = write_snapshot(self.root, newest, fsync=self.fsync)
        self._snapshot = Snapshot(token, newest)

    def invalidate(self) -> None:
        """Publish a change that may remove keys: a new token and no current snapshot."""
        with lock_root(self.root):
            bump_generation(self.root)

    def _newest_days(self) -> dict[SeriesKey, int]:
        """Every key and the newest day holding it, from every partition (oldest first)."""
        newest: dict[SeriesKey, int] = {}
        for partition in list_partitions(self.root):
            for key in self.partition_keys(partition, list_files(partition)):
                newest[key] = partition.day
        return newest
