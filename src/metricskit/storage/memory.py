"""``memory://``: the reference backend, numpy columns per series, nothing on disk.

Each series keeps one sorted, duplicate-free pair of read-only arrays plus a short list of
chunks written since. Chunks are merged (one concatenate, and a stable sort only when
they overlap) when a read needs them or when too many pile up, so appending in time
order costs a concatenate and nothing per sample. Reads return read-only views, never
copies.

Selections use two indexes kept up to date on write and delete: metric name -> keys and
(tag key, tag value) -> keys, so a query touches only the series it can match instead of
testing every key (100 selections over 10,000 keys: ~130 ms scanning, under 1 ms indexed).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage.base import (
    MAX_NS,
    Capabilities,
    StorageBackend,
    StorageStats,
    key_order,
    select_indexed,
)

__all__ = ["MemoryBackend"]

_MAX_PENDING_CHUNKS = 32
_K = TypeVar("_K")
_NO_TS: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
_NO_VS: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
_NO_TS.flags.writeable = False
_NO_VS.flags.writeable = False


def _discard(index: dict[_K, set[SeriesKey]], entry: _K, key: SeriesKey) -> None:
    members = index[entry]
    members.discard(key)
    if not members:
        del index[entry]


class _Column:
    __slots__ = ("pending", "ts", "vs")

    def __init__(self) -> None:
        # shared read-only empties: a burst of new series (alert state) pays no allocation
        self.ts: npt.NDArray[np.int64] = _NO_TS
        self.vs: npt.NDArray[np.float64] = _NO_VS
        self.pending: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []

    def append(self, ts: npt.NDArray[np.int64], vs: npt.NDArray[np.float64]) -> None:
        """Queue a chunk; ``ts`` must be the backend's own copy (it may be shared)."""
        self.pending.append((ts, np.array(vs, dtype=np.float64)))
        if len(self.pending) >= _MAX_PENDING_CHUNKS:
            self.merge()

    def merge(self) -> None:
        if not self.pending:
            return
        if self.ts.size:
            ts, vs = merge_last_wins([(self.ts, self.vs), *self.pending])
        else:  # a lone sorted chunk is kept as it is, so a shared timestamp array stays shared
            ts, vs = merge_last_wins(self.pending)
        ts.flags.writeable = False
        vs.flags.writeable = False
        self.ts, self.vs = ts, vs
        self.pending.clear()

    def drop_before(self, cutoff_ns: int) -> int:
        self.merge()
        if cutoff_ns >= MAX_NS:
            cut = len(self.ts)
        else:
            cut = int(np.searchsorted(self.ts, cutoff_ns, side="left"))
        if cut:
            self.ts = self.ts[cut:]
            self.vs = self.vs[cut:]
        return cut

    def nbytes(self) -> int:
        return (
            self.ts.nbytes + self.vs.nbytes + sum(ts.nbytes + vs.nbytes for ts, vs in self.pending)
        )


class MemoryBackend(StorageBackend):
    """Series in process memory as numpy arrays; thread-safe; gone when the process exits."""

    scheme = "memory"
    capabilities = Capabilities(persistent=False, deletes=True, multiprocess=False)

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._columns: dict[SeriesKey, _Column] = {}
        self._by_name: dict[str, set[SeriesKey]] = {}
        self._by_tag: dict[tuple[str, str], set[SeriesKey]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend({self.url!r})"

    def write(self, batch: Sequence[Series]) -> None:
        """Append each series' samples; merging happens lazily.

        Series of the batch that pass the same timestamps array share one copy of it
        (scraped or generated data often does): half the memory, and range functions
        recognise the shared grid without comparing the arrays.
        """
        copies: dict[int, npt.NDArray[np.int64]] = {}
        with self._lock:
            for series in batch:
                if not len(series):
                    continue
                column = self._columns.get(series.key)
                if column is None:
                    column = self._columns[series.key] = _Column()
                    self._index(series.key)
                ts = copies.get(id(series.timestamps))
                if ts is None:
                    # keyed by id(): the batch keeps every array alive for this call
                    ts = copies[id(series.timestamps)] = np.array(series.timestamps, dtype=np.int64)
                column.append(ts, series.values)

    def _index(self, key: SeriesKey) -> None:
        members = self._by_name.get(key.name)
        if members is None:
            members = self._by_name[key.name] = set()
        members.add(key)
        by_tag = self._by_tag
        for pair in key.tags.items_tuple:
            members = by_tag.get(pair)
            if members is None:
                members = by_tag[pair] = set()
            members.add(key)

    def _unindex(self, key: SeriesKey) -> None:
        # empty sets are dropped so the indexes never outgrow the live keys
        _discard(self._by_name, key.name, key)
        for pair in key.tags.items_tuple:
            _discard(self._by_tag, pair, key)

    def _candidates(self, selector: Selector) -> list[SeriesKey]:
        """The keys ``selector`` matches; the caller holds the lock."""
        return select_indexed(selector, self._columns.keys(), self._by_name, self._by_tag)

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        """The keys ``selector`` matches, from the name and tag indexes (a snapshot)."""
        with self._lock:
            return iter(self._candidates(selector))

    def query(self, selector: Selector, start_ns: int, end_ns: int) -> Iterator[Series]:
        """The non-empty selected series in ``[start_ns, end_ns)``, sorted by key (views)."""
        if type(self).read is not MemoryBackend.read:
            # a subclass's own read (a wrapper, a test double) must see every read
            yield from super().query(selector, start_ns, end_ns)
            return
        with self._lock:
            # (name, items) sorts as SeriesKey does, but compares in C, not in Tags.__lt__
            keys = sorted(self._candidates(selector), key=key_order)
            found = []
            for key in keys:
                column = self._columns[key]
                column.merge()
                found.append((key, column.ts, column.vs))
        for key, ts, vs in found:
            lo = int(ts.searchsorted(start_ns))
            hi = int(ts.searchsorted(end_ns))
            if hi > lo:
                yield Series(key, ts[lo:hi], vs[lo:hi])

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """Return read-only views of ``key``'s samples in ``[start_ns, end_ns)``."""
        with self._lock:
            column = self._columns.get(key)
            if column is None:
                return Series.empty(key)
            column.merge()
            ts, vs = column.ts, column.vs
        lo, hi = np.searchsorted(ts, (start_ns, end_ns), side="left")
        return Series(key, ts[lo:hi], vs[lo:hi])

    def names(self) -> set[str]:
        """The distinct metric names, from the name index."""
        with self._lock:
            return set(self._by_name)

    def read_many(self, keys: Sequence[SeriesKey], start_ns: int, end_ns: int) -> list[Series]:
        """Views of each key's samples in the range, under one lock.

        Series sharing one timestamps array (written in one batch) share one search.
        """
        if type(self).read is not MemoryBackend.read:
            return super().read_many(keys, start_ns, end_ns)  # a subclass's read sees all
        with self._lock:
            columns = [self._columns.get(key) for key in keys]
            for column in columns:
                if column is not None:
                    column.merge()
            arrays = [(c.ts, c.vs) if c is not None else (_NO_TS, _NO_VS) for c in columns]
        # keyed by id(): ``arrays`` keeps every array alive for this call
        views: dict[int, tuple[npt.NDArray[np.int64], int, int]] = {}
        out = []
        for key, (ts, vs) in zip(keys, arrays, strict=True):
            view = views.get(id(ts))
            if view is None:
                lo, hi = (int(i) for i in ts.searchsorted((start_ns, end_ns)))
                view = views[id(ts)] = (ts[lo:hi], lo, hi)
            out.append(Series(key, view[0], vs[view[1] : view[2]]))
        return out

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        """The newest sample in ``[start_ns, end_ns)``: one binary search, no copy."""
        with self._lock:
            column = self._columns.get(key)
            if column is None:
                return None
            column.merge()
            ts, vs = column.ts, column.vs
        # the newest sample of a live series is the last one: skip the search then
        n = len(ts)
        hi = n if n and ts[n - 1] < end_ns else int(ts.searchsorted(end_ns))
        if hi == 0 or ts[hi - 1] < start_ns:
            return None
        return int(ts[hi - 1]), float(vs[hi - 1])

    def keys(self) -> Iterator[SeriesKey]:
        """Every series holding samples (a snapshot: safe to write while iterating)."""
        with self._lock:
            return iter(list(self._columns))

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Drop samples older than ``cutoff_ns``; series left empty are forgotten."""
        removed = 0
        with self._lock:
            keys = list(self._columns) if selector is None else self._candidates(selector)
            for key in keys:
                column = self._columns[key]
                removed += column.drop_before(cutoff_ns)
                if not len(column.ts):
                    del self._columns[key]
                    self._unindex(key)
        return removed

    def stats(self) -> StorageStats:
        """Samples, series and the bytes of the arrays plus each key's Python objects."""
        with self._lock:
            for column in self._columns.values():
                column.merge()
            samples = sum(len(c.ts) for c in self._columns.values())
            array_bytes = sum(c.nbytes() for c in self._columns.values())
            key_bytes = sum(
                sys.getsizeof(k)
                + sys.getsizeof(k.name)
                + sys.getsizeof(k.tags)
                + sum(sys.getsizeof(x) for pair in k.tags.items_tuple for x in pair)
                for k in self._columns
            )
            return StorageStats(samples, len(self._columns), array_bytes + key_bytes)
