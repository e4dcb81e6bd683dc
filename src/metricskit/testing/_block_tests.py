"""Long series and ``last()``: a backend that keeps blocks behaves like a flat list of samples."""

from __future__ import annotations

import numpy as np
import pytest

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.testing._conformance_base import (
    SECOND,
    T0,
    ConformanceBase,
    assert_last_like_read,
    read_all,
    series_of,
)

__all__ = ["BlockTests"]


class BlockTests(ConformanceBase):
    """Series long enough to span blocks, hit where blocks join; ``last()`` against ``read()``."""

    # -- long series: block boundaries, rewrites, retention, last() -----------------------
    # Backends that keep samples in blocks (the SQL layout: 4,096 samples a block, a head
    # of recent rows) must behave exactly like a flat list of samples; these tests write
    # series long enough to span several blocks and then hit them where blocks join.

    def _long(self, backend: StorageBackend, name: str, n: int = 10_000) -> Series:
        key = SeriesKey.of(name, {"kind": "long"})
        ts = T0 + np.arange(n, dtype=np.int64) * SECOND
        values = np.round(np.random.default_rng(11).normal(size=n).cumsum() * 100) / 100
        s = Series(key, ts, values)
        self._flushed(backend, s)
        return s

    def test_long_series_block_boundaries(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.bounds")
        got = read_all(backend, s.key)
        np.testing.assert_array_equal(got.timestamps, s.timestamps)
        assert got.values.view(np.int64).tolist() == s.values.view(np.int64).tolist()
        for lo, hi in [(4090, 4100), (4095, 4097), (4096, 8193), (0, 1), (9999, 10_000)]:
            part = backend.read(s.key, T0 + lo * SECOND, T0 + hi * SECOND)
            np.testing.assert_array_equal(part.timestamps, s.timestamps[lo:hi])
            np.testing.assert_array_equal(part.values, s.values[lo:hi])
            assert backend.count(s.key, T0 + lo * SECOND, T0 + hi * SECOND) == hi - lo
        (queried,) = backend.query(Selector.for_key(s.key), T0 + 4000 * SECOND, T0 + 8500 * SECOND)
        np.testing.assert_array_equal(queried.values, s.values[4000:8500])

    def test_overwrite_inside_old_blocks(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.overwrite")
        at = np.array([0, 4095, 4096, 5000, 9999])
        self._flushed(backend, Series(s.key, s.timestamps[at], -np.arange(5.0) - 0.5))
        expected = s.values.copy()
        expected[at] = -np.arange(5.0) - 0.5
        got = read_all(backend, s.key)
        np.testing.assert_array_equal(got.timestamps, s.timestamps)
        np.testing.assert_array_equal(got.values, expected)
        assert backend.stats().samples >= 10_000

    def test_out_of_order_writes_into_old_blocks(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.ooo")
        # Half-second samples between existing ones, in old blocks, unsorted, plus a dup.
        mid = T0 + np.array([7000, 10, 4095, 10], dtype=np.int64) * SECOND + SECOND // 2
        self._flushed(backend, Series(s.key, mid, np.array([1.0, 2.0, 3.0, 4.0])))
        got = read_all(backend, s.key)
        assert len(got) == 10_003
        assert bool(np.all(np.diff(got.timestamps) > 0))
        lookup = dict(zip(got.timestamps.tolist(), got.values.tolist(), strict=True))
        assert lookup[int(mid[1])] == 4.0  # last write of the repeated timestamp wins
        assert lookup[int(mid[0])] == 1.0 and lookup[int(mid[2])] == 3.0
        assert lookup[int(s.timestamps[7000])] == s.values[7000]

    def test_small_appends_then_rewrites(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.long.appends")
        ts = T0 + np.arange(1_300, dtype=np.int64) * SECOND
        values = np.arange(1_300, dtype=np.float64) * 0.25
        for lo in range(0, 1_300, 100):
            backend.write([Series(key, ts[lo : lo + 100], values[lo : lo + 100])])
        backend.flush()
        expected = values.copy()
        expected[[3, 700, 1_299]] = [-1.0, -2.0, -3.0]
        self._flushed(backend, Series(key, ts[[1_299, 700, 3]], np.array([-3.0, -2.0, -1.0])))
        got = read_all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        np.testing.assert_array_equal(got.values, expected)
        assert backend.last(key, MIN_NS, MAX_NS) == (int(ts[-1]), -3.0)

    def test_retention_cuts_through_a_block(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.retention")
        other = self._long(backend, "test.long.retention.other", 5_000)
        removed = backend.delete_before(T0 + 5_000 * SECOND + 1, Selector.for_key(s.key))
        assert removed == 5_001
        backend.flush()
        got = read_all(backend, s.key)
        np.testing.assert_array_equal(got.timestamps, s.timestamps[5_001:])
        np.testing.assert_array_equal(got.values, s.values[5_001:])
        assert len(read_all(backend, other.key)) == 5_000
        assert backend.delete_before(T0 + 9_999 * SECOND) == 4_998 + 5_000
        assert read_all(backend, s.key).timestamps.tolist() == [int(s.timestamps[-1])]
        assert other.key not in set(backend.keys())

    def test_last_over_blocks_and_recent_samples(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.last")
        recent = Series(s.key, T0 + np.array([10_005, 10_010]) * SECOND, np.array([7.0, np.nan]))
        self._flushed(backend, recent)
        stamp, value = backend.last(s.key, MIN_NS, MAX_NS) or (0, 0.0)
        assert stamp == T0 + 10_010 * SECOND and np.isnan(value)
        assert backend.last(s.key, MIN_NS, T0 + 10_010 * SECOND) == (T0 + 10_005 * SECOND, 7.0)
        end = T0 + 10_005 * SECOND
        assert backend.last(s.key, MIN_NS, end) == (int(s.timestamps[-1]), s.values[-1])
        inside = T0 + 4_096 * SECOND
        assert backend.last(s.key, MIN_NS, inside) == (inside - SECOND, s.values[4_095])
        assert backend.last(s.key, T0 + 10_000 * SECOND, T0 + 10_005 * SECOND) is None
        assert backend.last(s.key, MIN_NS, T0) is None

    def test_special_values_bit_exact_in_long_series(self, backend: StorageBackend) -> None:
        if not backend.capabilities.bit_exact:
            pytest.skip(f"{type(backend).__name__} does not claim bit-exact values")
        key = SeriesKey.of("test.long.special")
        n = 6_000
        ts = T0 + np.arange(n, dtype=np.int64) * SECOND
        values = np.round(np.random.default_rng(5).normal(size=n) * 100, 2)
        values[[1, 4_096, 5_999]] = np.nan
        values[[2, 3_000]] = -0.0
        values[[3, 4_500]] = [np.inf, -np.inf]
        values[[4, 5]] = [0.1 + 0.2, 5e-324]
        self._flushed(backend, Series(key, ts, values))
        got = read_all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        assert got.values.view(np.int64).tolist() == values.view(np.int64).tolist()

    # -- last(): the newest sample, pushed down by each backend -----------------------
    # (read-path block: every built-in backend answers last() without reading the whole
    # history; these pin that its answers are exactly those of read())

    def test_last_after_overwrite(self, backend: StorageBackend) -> None:
        s = series_of("test.last.over", {"k": "v"}, [0, 10, 20], [1, 2, 3])
        self._flushed(backend, s)
        self._flushed(backend, series_of("test.last.over", {"k": "v"}, [20], [30]))
        assert backend.last(s.key, MIN_NS, MAX_NS) == (T0 + 20 * SECOND, 30.0)
        self._flushed(backend, series_of("test.last.over", {"k": "v"}, [20, 10], [300, 200]))
        assert backend.last(s.key, MIN_NS, MAX_NS) == (T0 + 20 * SECOND, 300.0)
        assert backend.last(s.key, MIN_NS, T0 + 20 * SECOND) == (T0 + 10 * SECOND, 200.0)
        assert_last_like_read(backend, s.key)

    def test_last_out_of_order_writes(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.ooo", {"k": "v"})
        self._flushed(backend, series_of("test.last.ooo", {"k": "v"}, [30, 10], [3, 1]))
        self._flushed(backend, series_of("test.last.ooo", {"k": "v"}, [20, 5], [2, 0.5]))
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        assert backend.last(key, MIN_NS, T0 + 25 * SECOND) == (T0 + 20 * SECOND, 2.0)
        backend.flush()
        # an older day written after a newer one
        self._flushed(backend, series_of("test.last.ooo", {"k": "v"}, [-86_400 * 3], [-1]))
        assert backend.last(key, MIN_NS, T0) == (T0 - 86_400 * 3 * SECOND, -1.0)
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        assert_last_like_read(backend, key)

    def test_last_after_delete_before(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.del", {})
        self._flushed(backend, series_of("test.last.del", {}, [0, 10, 20, 30], [0, 1, 2, 3]))
        backend.delete_before(T0 + 15 * SECOND)
        backend.flush()
        assert backend.last(key, MIN_NS, T0 + 15 * SECOND) is None
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        assert_last_like_read(backend, key)
        backend.delete_before(MAX_NS)
        backend.flush()
        assert backend.last(key, MIN_NS, MAX_NS) is None

    def test_last_nan_is_a_sample(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.nan", {})
        self._flushed(backend, series_of("test.last.nan", {}, [0, 10], [1, float("nan")]))
        got = backend.last(key, MIN_NS, MAX_NS)
        assert got is not None and got[0] == T0 + 10 * SECOND and np.isnan(got[1])
        self._flushed(backend, series_of("test.last.nan", {}, [20], [float("nan")]))
        got = backend.last(key, MIN_NS, MAX_NS)
        assert got is not None and got[0] == T0 + 20 * SECOND and np.isnan(got[1])
        assert backend.last(key, MIN_NS, T0 + 10 * SECOND) == (T0, 1.0)

    def test_last_unknown_key_and_empty_range(self, backend: StorageBackend) -> None:
        s = series_of("test.last.empty", {}, [0], [1])
        self._flushed(backend, s)
        assert backend.last(SeriesKey.of("test.last.unknown"), MIN_NS, MAX_NS) is None
        assert backend.last(s.key, T0 + SECOND, T0) is None
        assert backend.last(s.key, T0, T0) is None
