"""The conformance suite every storage backend passes.

Subclass :class:`BackendConformance` and provide one fixture, ``open_backend``: a zero-arg
callable that opens (or reopens) the backend at one location, closing what it opened at
teardown::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def open_backend(self, tmp_path):
            opened = []
            def open_():
                backend = MyBackend(f"mine://{tmp_path}")
                opened.append(backend)
                return backend
            yield open_
            for backend in opened:
                backend.close()

Tests that need a capability the backend does not claim (``persistent``, ``deletes``)
skip with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend

__all__ = ["BackendConformance"]

T0 = 1_795_046_400 * 10**9
SECOND = 10**9

OpenBackend = Callable[[], StorageBackend]


def _series(name: str, tags: dict[str, str], ts_s: list[float], values: list[float]) -> Series:
    key = SeriesKey.of(name, tags)
    ts = np.array([T0 + round(t * SECOND) for t in ts_s], dtype=np.int64)
    return Series(key, ts, np.array(values, dtype=np.float64))


def _all(backend: StorageBackend, key: SeriesKey) -> Series:
    return backend.read(key, MIN_NS, MAX_NS)


def _assert_samples(got: Series, ts_s: list[float], values: list[float]) -> None:
    expected_ts = np.array([T0 + round(t * SECOND) for t in ts_s], dtype=np.int64)
    assert got.timestamps.dtype == np.int64
    assert got.values.dtype == np.float64
    np.testing.assert_array_equal(got.timestamps, expected_ts)
    np.testing.assert_array_equal(got.values, np.array(values, dtype=np.float64))


class BackendConformance:
    """pytest tests of the :class:`~metricskit.storage.base.StorageBackend` contract."""

    @pytest.fixture
    def open_backend(self) -> Iterator[OpenBackend]:
        """Override: yield a callable opening the backend under test at one location."""
        raise NotImplementedError("subclasses define the open_backend fixture")

    @pytest.fixture
    def backend(self, open_backend: OpenBackend) -> StorageBackend:
        """A freshly opened backend."""
        return open_backend()

    def _flushed(self, backend: StorageBackend, *batch: Series) -> None:
        backend.write(list(batch))
        backend.flush()

    # -- write and read -------------------------------------------------------------

    def test_round_trip(self, backend: StorageBackend) -> None:
        s = _series("test.cpu.usage", {"host": "a"}, [0, 10, 20], [1.5, 2.5, 3.5])
        self._flushed(backend, s)
        _assert_samples(_all(backend, s.key), [0, 10, 20], [1.5, 2.5, 3.5])

    def test_read_unknown_key_is_empty(self, backend: StorageBackend) -> None:
        got = backend.read(SeriesKey.of("test.never.written"), MIN_NS, MAX_NS)
        assert len(got) == 0
        assert got.key == SeriesKey.of("test.never.written")

    def test_unsorted_batch_reads_sorted(self, backend: StorageBackend) -> None:
        s = _series("test.order.x", {}, [30, 10, 20, 0], [3, 1, 2, 0])
        self._flushed(backend, s)
        _assert_samples(_all(backend, s.key), [0, 10, 20, 30], [0, 1, 2, 3])

    def test_out_of_order_batches(self, backend: StorageBackend) -> None:
        self._flushed(backend, _series("test.order.y", {}, [100, 110], [10, 11]))
        self._flushed(backend, _series("test.order.y", {}, [50, 105], [5, 10.5]))
        got = _all(backend, SeriesKey.of("test.order.y"))
        _assert_samples(got, [50, 100, 105, 110], [5, 10, 10.5, 11])

    def test_last_write_wins_across_batches(self, backend: StorageBackend) -> None:
        self._flushed(backend, _series("test.dup.a", {"k": "v"}, [0, 10], [1, 2]))
        self._flushed(backend, _series("test.dup.a", {"k": "v"}, [10, 20], [20, 30]))
        _assert_samples(
            _all(backend, SeriesKey.of("test.dup.a", {"k": "v"})), [0, 10, 20], [1, 20, 30]
        )

    def test_last_write_wins_within_batch(self, backend: StorageBackend) -> None:
        s = _series("test.dup.b", {}, [10, 0, 10, 10], [1, 5, 2, 3])
        self._flushed(backend, s)
        _assert_samples(_all(backend, s.key), [0, 10], [5, 3])

    def test_half_open_range(self, backend: StorageBackend) -> None:
        s = _series("test.range.x", {}, [0, 10, 20, 30], [0, 1, 2, 3])
        self._flushed(backend, s)
        got = backend.read(s.key, T0 + 10 * SECOND, T0 + 30 * SECOND)
        _assert_samples(got, [10, 20], [1, 2])
        assert len(backend.read(s.key, T0 + 31 * SECOND, T0 + 40 * SECOND)) == 0
        assert len(backend.read(s.key, T0, T0)) == 0

    def test_nan_round_trips(self, backend: StorageBackend) -> None:
        s = _series("test.nan.x", {}, [0, 1, 2], [1.0, float("nan"), 3.0])
        self._flushed(backend, s)
        got = _all(backend, s.key)
        assert np.isnan(got.values[1])
        assert got.values[0] == 1.0
        assert got.values[2] == 3.0

    def test_extreme_values_round_trip(self, backend: StorageBackend) -> None:
        values = [0.0, -0.0, 1e-300, -1e300, 0.1 + 0.2, 123456789.123456789, 2.0**53 + 2]
        s = _series("test.values.extreme", {}, list(range(len(values))), values)
        self._flushed(backend, s)
        got = _all(backend, s.key)
        assert got.values.tolist() == values

    def test_times_before_epoch_and_far_future(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.time.extreme")
        ts = np.array([-(10**18), -1, 0, 1, 4 * 10**18], dtype=np.int64)
        backend.write([Series(key, ts, np.arange(5, dtype=np.float64))])
        backend.flush()
        np.testing.assert_array_equal(_all(backend, key).timestamps, ts)

    def test_tags_distinguish_series(self, backend: StorageBackend) -> None:
        a = _series("test.tags.x", {"host": "a"}, [0], [1])
        b = _series("test.tags.x", {"host": "b"}, [0], [2])
        plain = _series("test.tags.x", {}, [0], [3])
        self._flushed(backend, a, b, plain)
        assert _all(backend, a.key).values.tolist() == [1]
        assert _all(backend, b.key).values.tolist() == [2]
        assert _all(backend, plain.key).values.tolist() == [3]

    def test_hostile_tag_values(self, backend: StorageBackend) -> None:
        tags = {"q": 'it\'s "quoted"; DROP TABLE x; --', "u": "naïve 日本 \\ , = }"}
        s = _series("test.tags.hostile", tags, [0], [42])
        self._flushed(backend, s)
        assert SeriesKey.of("test.tags.hostile", tags) in set(backend.keys())
        assert _all(backend, s.key).values.tolist() == [42]

    def test_empty_batch_and_empty_series(self, backend: StorageBackend) -> None:
        backend.write([])
        backend.write([Series.empty(SeriesKey.of("test.empty.x"))])
        backend.flush()
        assert SeriesKey.of("test.empty.x") not in set(backend.keys())

    def test_many_series_one_batch(self, backend: StorageBackend) -> None:
        batch = [
            _series("test.many.x", {"i": str(i)}, [0, 1, 2], [i, i + 1, i + 2]) for i in range(200)
        ]
        self._flushed(backend, *batch)
        assert len([k for k in backend.keys() if k.name == "test.many.x"]) == 200
        _assert_samples(
            _all(backend, SeriesKey.of("test.many.x", {"i": "137"})), [0, 1, 2], [137, 138, 139]
        )

    def test_large_series(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.large.x")
        n = 50_000
        ts = T0 + np.arange(n, dtype=np.int64) * SECOND
        values = np.random.default_rng(7).normal(size=n)
        backend.write([Series(key, ts, values)])
        backend.flush()
        got = _all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        np.testing.assert_array_equal(got.values, values)

    def test_writes_visible_before_flush_or_after(self, backend: StorageBackend) -> None:
        s = _series("test.visible.x", {}, [0], [1])
        backend.write([s])
        backend.flush()
        assert len(_all(backend, s.key)) == 1

    # -- keys, select, query ----------------------------------------------------------

    def test_keys_and_select(self, backend: StorageBackend) -> None:
        self._flushed(
            backend,
            _series("test.sel.a", {"host": "h1", "dc": "x"}, [0], [1]),
            _series("test.sel.a", {"host": "h2", "dc": "x"}, [0], [1]),
            _series("test.sel.b", {"host": "h1"}, [0], [1]),
        )
        keys = set(backend.keys())
        assert {k.name for k in keys} >= {"test.sel.a", "test.sel.b"}
        by_name = set(backend.select(Selector.of("test.sel.a")))
        assert by_name == {
            SeriesKey.of("test.sel.a", {"host": "h1", "dc": "x"}),
            SeriesKey.of("test.sel.a", {"host": "h2", "dc": "x"}),
        }
        by_tag = set(backend.select(Selector.of(None, {"host": "h1"})))
        assert by_tag == {
            SeriesKey.of("test.sel.a", {"host": "h1", "dc": "x"}),
            SeriesKey.of("test.sel.b", {"host": "h1"}),
        }
        exact = set(backend.select(Selector.of("test.sel.b", {"host": "h1"}, exact=True)))
        assert exact == {SeriesKey.of("test.sel.b", {"host": "h1"})}
        assert set(backend.select(Selector.of("test.sel.a", {"host": "nope"}))) == set()

    def test_query_skips_series_empty_in_range(self, backend: StorageBackend) -> None:
        self._flushed(
            backend,
            _series("test.q.x", {"i": "early"}, [0, 1], [1, 2]),
            _series("test.q.x", {"i": "late"}, [100, 101], [3, 4]),
        )
        got = list(backend.query(Selector.of("test.q.x"), T0 + 50 * SECOND, MAX_NS))
        assert [s.key.tags["i"] for s in got] == ["late"]
        _assert_samples(got[0], [100, 101], [3, 4])

    def test_count_and_last(self, backend: StorageBackend) -> None:
        s = _series("test.count.x", {}, [0, 10, 20], [1, 2, 3])
        self._flushed(backend, s)
        assert backend.count(s.key) == 3
        assert backend.count(s.key, T0 + 5 * SECOND, T0 + 20 * SECOND) == 1
        assert backend.last(s.key, MIN_NS, MAX_NS) == (T0 + 20 * SECOND, 3.0)
        assert backend.last(s.key, MIN_NS, T0 + 20 * SECOND) == (T0 + 10 * SECOND, 2.0)
        assert backend.last(s.key, T0 + 21 * SECOND, MAX_NS) is None

    # -- delete and stats -------------------------------------------------------------

    def test_delete_before_all_series(self, backend: StorageBackend) -> None:
        self._flushed(
            backend,
            _series("test.del.a", {}, [0, 10, 20], [1, 2, 3]),
            _series("test.del.b", {}, [5, 15], [1, 2]),
        )
        removed = backend.delete_before(T0 + 12 * SECOND)
        backend.flush()
        assert removed == 3
        _assert_samples(_all(backend, SeriesKey.of("test.del.a")), [20], [3])
        _assert_samples(_all(backend, SeriesKey.of("test.del.b")), [15], [2])

    def test_deleted_series_leave_keys(self, backend: StorageBackend) -> None:
        self._flushed(backend, _series("test.gone.x", {}, [0, 1], [1, 2]))
        assert backend.delete_before(MAX_NS) >= 2
        backend.flush()
        assert SeriesKey.of("test.gone.x") not in set(backend.keys())
        assert len(_all(backend, SeriesKey.of("test.gone.x"))) == 0

    def test_delete_with_selector(self, backend: StorageBackend) -> None:
        if not backend.capabilities.deletes:
            pytest.skip(f"{type(backend).__name__} does not claim selective deletes")
        self._flushed(
            backend,
            _series("test.dsel.x", {"host": "a"}, [0, 10], [1, 2]),
            _series("test.dsel.x", {"host": "b"}, [0, 10], [1, 2]),
            _series("test.dsel.y", {"host": "a"}, [0, 10], [1, 2]),
        )
        removed = backend.delete_before(T0 + 5 * SECOND, Selector.of("test.dsel.x", {"host": "a"}))
        assert removed == 1
        removed_all = backend.delete_before(MAX_NS, Selector.of("test.dsel.y"))
        assert removed_all == 2
        backend.flush()
        _assert_samples(_all(backend, SeriesKey.of("test.dsel.x", {"host": "a"})), [10], [2])
        _assert_samples(_all(backend, SeriesKey.of("test.dsel.x", {"host": "b"})), [0, 10], [1, 2])
        assert SeriesKey.of("test.dsel.y", {"host": "a"}) not in set(backend.keys())

    def test_exact_selector_delete_spares_supersets(self, backend: StorageBackend) -> None:
        if not backend.capabilities.deletes:
            pytest.skip(f"{type(backend).__name__} does not claim selective deletes")
        plain = _series("test.exact.x", {}, [0], [1])
        tagged = _series("test.exact.x", {"host": "a"}, [0], [2])
        self._flushed(backend, plain, tagged)
        assert backend.delete_before(MAX_NS, Selector.for_key(plain.key)) == 1
        backend.flush()
        assert len(_all(backend, tagged.key)) == 1
        assert len(_all(backend, plain.key)) == 0

    def test_stats(self, backend: StorageBackend) -> None:
        before = backend.stats()
        self._flushed(
            backend,
            _series("test.stats.x", {"i": "1"}, [0, 1, 2], [1, 2, 3]),
            _series("test.stats.x", {"i": "2"}, [0, 1], [1, 2]),
        )
        after = backend.stats()
        assert after.samples - before.samples == 5
        assert after.series - before.series == 2
        assert after.bytes > 0

    # -- persistence ------------------------------------------------------------------

    def test_reopen_keeps_flushed_data(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        s = _series("test.persist.x", {"host": "a"}, [0, 10], [1, float("nan")])
        first.write([s])
        first.flush()
        first.close()
        second = open_backend()
        got = _all(second, s.key)
        assert got.timestamps.tolist() == [T0, T0 + 10 * SECOND]
        assert got.values[0] == 1 and np.isnan(got.values[1])
        assert s.key in set(second.keys())

    def test_close_flushes(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        s = _series("test.closeflush.x", {}, [0], [7])
        first.write([s])
        first.close()
        assert _all(open_backend(), s.key).values.tolist() == [7]

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
        got = _all(backend, s.key)
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
        got = _all(backend, s.key)
        np.testing.assert_array_equal(got.timestamps, s.timestamps)
        np.testing.assert_array_equal(got.values, expected)
        assert backend.stats().samples >= 10_000

    def test_out_of_order_writes_into_old_blocks(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.ooo")
        # Half-second samples between existing ones, in old blocks, unsorted, plus a dup.
        mid = T0 + np.array([7000, 10, 4095, 10], dtype=np.int64) * SECOND + SECOND // 2
        self._flushed(backend, Series(s.key, mid, np.array([1.0, 2.0, 3.0, 4.0])))
        got = _all(backend, s.key)
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
        got = _all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        np.testing.assert_array_equal(got.values, expected)
        assert backend.last(key, MIN_NS, MAX_NS) == (int(ts[-1]), -3.0)

    def test_retention_cuts_through_a_block(self, backend: StorageBackend) -> None:
        s = self._long(backend, "test.long.retention")
        other = self._long(backend, "test.long.retention.other", 5_000)
        removed = backend.delete_before(T0 + 5_000 * SECOND + 1, Selector.for_key(s.key))
        assert removed == 5_001
        backend.flush()
        got = _all(backend, s.key)
        np.testing.assert_array_equal(got.timestamps, s.timestamps[5_001:])
        np.testing.assert_array_equal(got.values, s.values[5_001:])
        assert len(_all(backend, other.key)) == 5_000
        assert backend.delete_before(T0 + 9_999 * SECOND) == 4_998 + 5_000
        assert _all(backend, s.key).timestamps.tolist() == [int(s.timestamps[-1])]
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
        got = _all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        assert got.values.view(np.int64).tolist() == values.view(np.int64).tolist()

    # -- last(): the newest sample, pushed down by each backend -----------------------
    # (read-path block: every built-in backend answers last() without reading the whole
    # history; these pin that its answers are exactly those of read())

    def _assert_last_like_read(self, backend: StorageBackend, key: SeriesKey) -> None:
        """last() equals read()'s newest sample for ranges cutting every way."""
        stored = _all(backend, key).timestamps.tolist()
        bounds = sorted({MIN_NS, MAX_NS, *stored, *(t + 1 for t in stored), T0 - SECOND})
        for start in bounds:
            for end in bounds:
                got = backend.last(key, start, end)
                window = backend.read(key, start, end)
                if not len(window):
                    assert got is None, (start, end, got)
                    continue
                assert got is not None, (start, end)
                assert got[0] == int(window.timestamps[-1]), (start, end)
                assert np.array_equal([got[1]], window.values[-1:], equal_nan=True)

    def test_last_after_overwrite(self, backend: StorageBackend) -> None:
        s = _series("test.last.over", {"k": "v"}, [0, 10, 20], [1, 2, 3])
        self._flushed(backend, s)
        self._flushed(backend, _series("test.last.over", {"k": "v"}, [20], [30]))
        assert backend.last(s.key, MIN_NS, MAX_NS) == (T0 + 20 * SECOND, 30.0)
        self._flushed(backend, _series("test.last.over", {"k": "v"}, [20, 10], [300, 200]))
        assert backend.last(s.key, MIN_NS, MAX_NS) == (T0 + 20 * SECOND, 300.0)
        assert backend.last(s.key, MIN_NS, T0 + 20 * SECOND) == (T0 + 10 * SECOND, 200.0)
        self._assert_last_like_read(backend, s.key)

    def test_last_out_of_order_writes(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.ooo", {"k": "v"})
        self._flushed(backend, _series("test.last.ooo", {"k": "v"}, [30, 10], [3, 1]))
        self._flushed(backend, _series("test.last.ooo", {"k": "v"}, [20, 5], [2, 0.5]))
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        assert backend.last(key, MIN_NS, T0 + 25 * SECOND) == (T0 + 20 * SECOND, 2.0)
        backend.flush()
        # an older day written after a newer one
        self._flushed(backend, _series("test.last.ooo", {"k": "v"}, [-86_400 * 3], [-1]))
        assert backend.last(key, MIN_NS, T0) == (T0 - 86_400 * 3 * SECOND, -1.0)
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        self._assert_last_like_read(backend, key)

    def test_last_after_delete_before(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.del", {})
        self._flushed(backend, _series("test.last.del", {}, [0, 10, 20, 30], [0, 1, 2, 3]))
        backend.delete_before(T0 + 15 * SECOND)
        backend.flush()
        assert backend.last(key, MIN_NS, T0 + 15 * SECOND) is None
        assert backend.last(key, MIN_NS, MAX_NS) == (T0 + 30 * SECOND, 3.0)
        self._assert_last_like_read(backend, key)
        backend.delete_before(MAX_NS)
        backend.flush()
        assert backend.last(key, MIN_NS, MAX_NS) is None

    def test_last_nan_is_a_sample(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.last.nan", {})
        self._flushed(backend, _series("test.last.nan", {}, [0, 10], [1, float("nan")]))
        got = backend.last(key, MIN_NS, MAX_NS)
        assert got is not None and got[0] == T0 + 10 * SECOND and np.isnan(got[1])
        self._flushed(backend, _series("test.last.nan", {}, [20], [float("nan")]))
        got = backend.last(key, MIN_NS, MAX_NS)
        assert got is not None and got[0] == T0 + 20 * SECOND and np.isnan(got[1])
        assert backend.last(key, MIN_NS, T0 + 10 * SECOND) == (T0, 1.0)

    def test_last_unknown_key_and_empty_range(self, backend: StorageBackend) -> None:
        s = _series("test.last.empty", {}, [0], [1])
        self._flushed(backend, s)
        assert backend.last(SeriesKey.of("test.last.unknown"), MIN_NS, MAX_NS) is None
        assert backend.last(s.key, T0 + SECOND, T0) is None
        assert backend.last(s.key, T0, T0) is None

    def test_last_after_reopen(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        key = SeriesKey.of("test.last.reopen", {"host": "a"})
        first.write([_series("test.last.reopen", {"host": "a"}, [0, 10], [1, 2])])
        first.flush()
        first.write([_series("test.last.reopen", {"host": "a"}, [10, 5], [20, 0.5])])
        first.close()
        second = open_backend()
        assert second.last(key, MIN_NS, MAX_NS) == (T0 + 10 * SECOND, 20.0)
        assert second.last(key, MIN_NS, T0 + 10 * SECOND) == (T0 + 5 * SECOND, 0.5)
        self._assert_last_like_read(second, key)
