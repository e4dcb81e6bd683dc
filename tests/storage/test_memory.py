from collections.abc import Callable, Iterator

import numpy as np
import pytest

from metricskit.model import Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.storage.memory import MemoryBackend
from metricskit.testing import BackendConformance


class TestMemoryConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self) -> Iterator[Callable[[], StorageBackend]]:
        backend = MemoryBackend()
        yield lambda: backend


class _ReadCounting(MemoryBackend):
    """The memory backend with the base class's last(): the default every plugin inherits."""

    last = StorageBackend.last

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        self.reads.append((start_ns, end_ns))
        return super().read(key, start_ns, end_ns)


class TestBaseDefaultLastConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self) -> Iterator[Callable[[], StorageBackend]]:
        backend = _ReadCounting()
        yield lambda: backend


def test_base_default_last_reads_a_window_not_the_history() -> None:
    backend = _ReadCounting()
    key = SeriesKey.of("a.b.c")
    step = 10 * 10**9
    end = 1_795_046_400 * 10**9
    ts = end - np.arange(100_000, 0, -1, dtype=np.int64) * step  # ~11.6 days up to `end`
    backend.write([Series(key, ts, np.arange(ts.size, dtype=np.float64))])
    assert backend.last(key, MIN_NS, end) == (int(ts[-1]), float(ts.size - 1))
    ((start, stop),) = backend.reads  # one read: the first window holds the newest sample
    assert stop == end and end - start == 3600 * 10**9
    backend.reads.clear()
    later = int(ts[-1]) + 2 * 86_400 * 10**9  # silent for two days: a few doubling windows
    assert backend.last(key, MIN_NS, later) == (int(ts[-1]), float(ts.size - 1))
    assert 1 < len(backend.reads) <= 8
    assert all(b - a < 4 * 86_400 * 10**9 for a, b in backend.reads)


def test_last_is_one_search() -> None:
    backend = MemoryBackend()
    key = SeriesKey.of("a.b.c")
    backend.write([Series(key, np.array([5, 1, 3], dtype=np.int64), np.array([5.0, 1.0, 3.0]))])
    assert backend.last(key, MIN_NS, MAX_NS) == (5, 5.0)
    assert backend.last(key, MIN_NS, 5) == (3, 3.0)
    assert backend.last(key, 4, 5) is None
    assert backend.last(SeriesKey.of("a.b.d"), MIN_NS, MAX_NS) is None


def test_reads_are_read_only_views() -> None:
    backend = MemoryBackend()
    key = SeriesKey.of("a.b.c")
    backend.write([Series(key, np.arange(3, dtype=np.int64), np.ones(3))])
    got = backend.read(key, MIN_NS, MAX_NS)
    with pytest.raises(ValueError):
        got.values[0] = 5.0


def test_caller_arrays_are_copied() -> None:
    backend = MemoryBackend()
    key = SeriesKey.of("a.b.c")
    values = np.ones(3)
    backend.write([Series(key, np.arange(3, dtype=np.int64), values)])
    values[:] = 9
    assert backend.read(key, MIN_NS, MAX_NS).values.tolist() == [1, 1, 1]


def test_many_small_appends_merge() -> None:
    backend = MemoryBackend()
    key = SeriesKey.of("a.b.c")
    for i in range(100):
        backend.write([Series(key, np.array([i], dtype=np.int64), np.array([float(i)]))])
    got = backend.read(key, MIN_NS, MAX_NS)
    assert got.timestamps.tolist() == list(range(100))


def test_merge_last_wins_is_stable() -> None:
    ts, vs = merge_last_wins(
        [
            (np.array([1, 2], dtype=np.int64), np.array([10.0, 20.0])),
            (np.array([2, 1, 2], dtype=np.int64), np.array([21.0, 11.0, 22.0])),
        ]
    )
    assert ts.tolist() == [1, 2]
    assert vs.tolist() == [11.0, 22.0]


def test_bytes_per_sample_near_sixteen() -> None:
    backend = MemoryBackend()
    n = 100_000
    for i in range(10):
        key = SeriesKey.of("mem.bytes.x", {"i": str(i)})
        backend.write([Series(key, np.arange(n, dtype=np.int64), np.zeros(n))])
    stats = backend.stats()
    assert stats.samples == 10 * n
    assert 16 <= stats.bytes / stats.samples < 17
