"""How one series' pending samples are held between ``record()`` and a flush.

A series buffer is a flat list ``[t, v, t, v, ...]`` that the Recorder's hot path extends
by one pair per sample; ``record_many`` puts a :class:`Chunk` of arrays and a ``None``
filler in a pair's place, so the list still holds whole pairs. A flat list rather than a
list of tuples: no tuple stays alive per sample (less memory, no work for the cyclic GC).
A flush takes the list and turns it into one columnar :class:`~metricskit.model.Series`:
two ``np.fromiter`` calls over the even and odd items for plain samples (about 4x faster
than converting tuples), a concatenation where chunks sit among them. The bound, the
flush thread and the accounting that decide when this happens are
:mod:`metricskit._buffer`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Union

import numpy as np
import numpy.typing as npt

from metricskit.model import Series, SeriesKey

__all__ = [
    "Chunk",
    "EventStamps",
    "Item",
    "SeriesBuffer",
    "merge_batches",
    "sample_count",
    "to_series",
]


class Chunk:
    """Arrays appended by ``record_many``, sitting in a series buffer among the pairs."""

    __slots__ = ("ts", "vs")

    def __init__(self, ts: npt.NDArray[np.int64], vs: npt.NDArray[np.float64]) -> None:
        self.ts = ts
        self.vs = vs


Item = Union[int, float, Chunk, None]  # noqa: UP007 - runtime alias on 3.10

_NO_NS = -(2**63)  # below every timestamp


class SeriesBuffer:
    """One series' pending samples in recorded order: ``[t, v, t, v, ..., Chunk, None, ...]``."""

    __slots__ = ("chunky", "items", "key")

    def __init__(self, key: SeriesKey) -> None:
        self.key = key
        self.items: list[Item] = []
        # Set (never cleared) before the first Chunk is appended, so a flush that took a
        # Chunk always sees it; series fed only by record() keep the one-call conversion.
        self.chunky = False

    def take(self) -> list[Item]:
        """Remove and return the pairs present now; extends racing with this land after."""
        items = self.items
        n = len(items)
        taken = items[:n]
        del items[:n]
        return taken


class EventStamps:
    """The clock's readings for one series of events, made distinct: a clock callable.

    A store keeps one sample per (series, timestamp), the last written. For a gauge that is
    right (the newer reading replaces the older); for events such as requests it would
    merge two requests stamped in one clock tick (a 15 ms clock on Windows, a
    ``ManualClock``) into one, while the histogram's counters count both.

    So the n-th event read at one clock reading ``t`` is stamped ``t - n`` ns: the
    nanoseconds just before the reading, never after it, so an evaluation or report made
    at the clock's now sees every event recorded before it (a stamp past ``now`` would be
    left out of a window ending at ``now`` until the clock moved). Which of the events of
    one tick came first the clock cannot tell anyway. Should the clock have moved by less
    than the previous tick's events (a ``ManualClock`` advanced by a few ns), the stamps go
    on just past the highest one given instead. A clock that steps back is followed.
    """

    __slots__ = ("_floor", "_lock", "_n", "_now", "_read", "_top")

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now = now_ns
        self._lock = threading.Lock()
        self._read = _NO_NS  # the clock's reading of the current run of events
        self._n = 0  # events stamped at that reading
        self._floor = _NO_NS  # the highest stamp given before that reading
        self._top = _NO_NS  # the highest stamp given

    def __call__(self) -> int:
        """The stamp of one event: at or just before the clock's now, and not used yet."""
        with self._lock:  # read inside: threads' stamps follow their readings' order
            now = self._now()
            top = self._top
            if now > top:  # the clock moved past every stamp given: the common case
                self._read, self._n, self._floor, self._top = now, 1, top, now
                return now
            if now != self._read:
                # forward: stay above what was given; back: follow the clock
                self._floor = self._top if now > self._read else _NO_NS
                self._top = self._floor
                self._read, self._n = now, 0
            stamp = now - self._n
            if stamp <= self._floor:
                stamp = self._top + 1
            self._n += 1
            self._top = max(self._top, stamp)
            return stamp


def sample_count(items: list[Item], chunky: bool) -> int:
    """How many samples ``items`` (taken from a buffer) hold."""
    if not chunky:
        return len(items) // 2
    return sum(len(i.ts) if type(i) is Chunk else 1 for i in items[0::2])


def to_series(key: SeriesKey, items: list[Item], chunky: bool) -> Series:
    """Build one :class:`Series` from a buffer's pairs (samples and chunks, in order)."""
    if not chunky:
        ts, vs = _pairs_to_arrays(items)
        return Series(key, ts, vs)
    ts_parts: list[npt.NDArray[np.int64]] = []
    vs_parts: list[npt.NDArray[np.float64]] = []
    start = 0
    for i in range(0, len(items), 2):
        chunk = items[i]
        if type(chunk) is Chunk:
            if i > start:
                ts, vs = _pairs_to_arrays(items[start:i])
                ts_parts.append(ts)
                vs_parts.append(vs)
            ts_parts.append(chunk.ts)
            vs_parts.append(chunk.vs)
            start = i + 2
    if start < len(items):
        ts, vs = _pairs_to_arrays(items[start:])
        ts_parts.append(ts)
        vs_parts.append(vs)
    if len(ts_parts) == 1:
        return Series(key, ts_parts[0], vs_parts[0])
    return Series(key, np.concatenate(ts_parts), np.concatenate(vs_parts))


def _pairs_to_arrays(
    items: list[Item],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    n = len(items) // 2
    ts = np.fromiter(items[0::2], dtype=np.int64, count=n)
    vs = np.fromiter(items[1::2], dtype=np.float64, count=n)
    return ts, vs


def merge_batches(batches: list[list[Series]]) -> list[Series]:
    """One series per key, samples concatenated in batch order (so later writes still win)."""
    parts: dict[SeriesKey, list[Series]] = {}
    for batch in batches:
        for series in batch:
            parts.setdefault(series.key, []).append(series)
    return [
        group[0]
        if len(group) == 1
        else Series(
            key,
            np.concatenate([s.timestamps for s in group]),
            np.concatenate([s.values for s in group]),
        )
        for key, group in parts.items()
    ]
