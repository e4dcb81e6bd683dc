"""The storage contract itself: write and read, last write wins, keys, select, delete, stats."""

from __future__ import annotations

import numpy as np
import pytest

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.testing._conformance_base import (
    SECOND,
    T0,
    ConformanceBase,
    assert_samples,
    read_all,
    series_of,
)

__all__ = ["ContractTests"]


class ContractTests(ConformanceBase):
    """What every backend answers, whatever it stores in: the five methods and the derived ones."""

    # -- write and read -------------------------------------------------------------

    def test_round_trip(self, backend: StorageBackend) -> None:
        s = series_of("test.cpu.usage", {"host": "a"}, [0, 10, 20], [1.5, 2.5, 3.5])
        self._flushed(backend, s)
        assert_samples(read_all(backend, s.key), [0, 10, 20], [1.5, 2.5, 3.5])

    def test_read_unknown_key_is_empty(self, backend: StorageBackend) -> None:
        got = backend.read(SeriesKey.of("test.never.written"), MIN_NS, MAX_NS)
        assert len(got) == 0
        assert got.key == SeriesKey.of("test.never.written")

    def test_unsorted_batch_reads_sorted(self, backend: StorageBackend) -> None:
        s = series_of("test.order.x", {}, [30, 10, 20, 0], [3, 1, 2, 0])
        self._flushed(backend, s)
        assert_samples(read_all(backend, s.key), [0, 10, 20, 30], [0, 1, 2, 3])

    def test_out_of_order_batches(self, backend: StorageBackend) -> None:
        self._flushed(backend, series_of("test.order.y", {}, [100, 110], [10, 11]))
        self._flushed(backend, series_of("test.order.y", {}, [50, 105], [5, 10.5]))
        got = read_all(backend, SeriesKey.of("test.order.y"))
        assert_samples(got, [50, 100, 105, 110], [5, 10, 10.5, 11])

    def test_last_write_wins_across_batches(self, backend: StorageBackend) -> None:
        self._flushed(backend, series_of("test.dup.a", {"k": "v"}, [0, 10], [1, 2]))
        self._flushed(backend, series_of("test.dup.a", {"k": "v"}, [10, 20], [20, 30]))
        assert_samples(
            read_all(backend, SeriesKey.of("test.dup.a", {"k": "v"})), [0, 10, 20], [1, 20, 30]
        )

    def test_last_write_wins_within_batch(self, backend: StorageBackend) -> None:
        s = series_of("test.dup.b", {}, [10, 0, 10, 10], [1, 5, 2, 3])
        self._flushed(backend, s)
        assert_samples(read_all(backend, s.key), [0, 10], [5, 3])

    def test_half_open_range(self, backend: StorageBackend) -> None:
        s = series_of("test.range.x", {}, [0, 10, 20, 30], [0, 1, 2, 3])
        self._flushed(backend, s)
        got = backend.read(s.key, T0 + 10 * SECOND, T0 + 30 * SECOND)
        assert_samples(got, [10, 20], [1, 2])
        assert len(backend.read(s.key, T0 + 31 * SECOND, T0 + 40 * SECOND)) == 0
        assert len(backend.read(s.key, T0, T0)) == 0

    def test_nan_round_trips(self, backend: StorageBackend) -> None:
        s = series_of("test.nan.x", {}, [0, 1, 2], [1.0, float("nan"), 3.0])
        self._flushed(backend, s)
        got = read_all(backend, s.key)
        assert np.isnan(got.values[1])
        assert got.values[0] == 1.0
        assert got.values[2] == 3.0

    def test_extreme_values_round_trip(self, backend: StorageBackend) -> None:
        values = [0.0, -0.0, 1e-300, -1e300, 0.1 + 0.2, 123456789.123456789, 2.0**53 + 2]
        s = series_of("test.values.extreme", {}, list(range(len(values))), values)
        self._flushed(backend, s)
        got = read_all(backend, s.key)
        assert got.values.tolist() == values

    def test_times_before_epoch_and_far_future(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.time.extreme")
        ts = np.array([-(10**18), -1, 0, 1, 4 * 10**18], dtype=np.int64)
        backend.write([Series(key, ts, np.arange(5, dtype=np.float64))])
        backend.flush()
        np.testing.assert_array_equal(read_all(backend, key).timestamps, ts)

    def test_tags_distinguish_series(self, backend: StorageBackend) -> None:
        a = series_of("test.tags.x", {"host": "a"}, [0], [1])
        b = series_of("test.tags.x", {"host": "b"}, [0], [2])
        plain = series_of("test.tags.x", {}, [0], [3])
        self._flushed(backend, a, b, plain)
        assert read_all(backend, a.key).values.tolist() == [1]
        assert read_all(backend, b.key).values.tolist() == [2]
        assert read_all(backend, plain.key).values.tolist() == [3]

    def test_hostile_tag_values(self, backend: StorageBackend) -> None:
        tags = {"q": 'it\'s "quoted"; DROP TABLE x; --', "u": "naïve 日本 \\ , = }"}
        s = series_of("test.tags.hostile", tags, [0], [42])
        self._flushed(backend, s)
        assert SeriesKey.of("test.tags.hostile", tags) in set(backend.keys())
        assert read_all(backend, s.key).values.tolist() == [42]

    def test_empty_batch_and_empty_series(self, backend: StorageBackend) -> None:
        backend.write([])
        backend.write([Series.empty(SeriesKey.of("test.empty.x"))])
        backend.flush()
        assert SeriesKey.of("test.empty.x") not in set(backend.keys())

    def test_many_series_one_batch(self, backend: StorageBackend) -> None:
        batch = [
            series_of("test.many.x", {"i": str(i)}, [0, 1, 2], [i, i + 1, i + 2])
            for i in range(200)
        ]
        self._flushed(backend, *batch)
        assert len([k for k in backend.keys() if k.name == "test.many.x"]) == 200
        assert_samples(
            read_all(backend, SeriesKey.of("test.many.x", {"i": "137"})), [0, 1, 2], [137, 138, 139]
        )

    def test_large_series(self, backend: StorageBackend) -> None:
        key = SeriesKey.of("test.large.x")
        n = 50_000
        ts = T0 + np.arange(n, dtype=np.int64) * SECOND
        values = np.random.default_rng(7).normal(size=n)
        backend.write([Series(key, ts, values)])
        backend.flush()
        got = read_all(backend, key)
        np.testing.assert_array_equal(got.timestamps, ts)
        np.testing.assert_array_equal(got.values, values)

    def test_writes_visible_before_flush_or_after(self, backend: StorageBackend) -> None:
        s = series_of("test.visible.x", {}, [0], [1])
        backend.write([s])
        backend.flush()
        assert len(read_all(backend, s.key)) == 1

    # -- keys, select, query ----------------------------------------------------------

    def test_keys_and_select(self, backend: StorageBackend) -> None:
        self._flushed(
            backend,
            series_of("test.sel.a", {"host": "h1", "dc": "x"}, [0], [1]),
            series_of("test.sel.a", {"host": "h2", "dc": "x"}, [0], [1]),
            series_of("test.sel.b", {"host": "h1"}, [0], [1]),
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
            series_of("test.q.x", {"i": "early"}, [0, 1], [1, 2]),
            series_of("test.q.x", {"i": "late"}, [100, 101], [3, 4]),
        )
        got = list(backend.query(Selector.of("test.q.x"), T0 + 50 * SECOND, MAX_NS))
        assert [s.key.tags["i"] for s in got] == ["late"]
        assert_samples(got[0], [100, 101], [3, 4])

    def test_count_and_last(self, backend: StorageBackend) -> None:
        s = series_of("test.count.x", {}, [0, 10, 20], [1, 2, 3])
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
            series_of("test.del.a", {}, [0, 10, 20], [1, 2, 3]),
            series_of("test.del.b", {}, [5, 15], [1, 2]),
        )
        removed = backend.delete_before(T0 + 12 * SECOND)
        backend.flush()
        assert removed == 3
        assert_samples(read_all(backend, SeriesKey.of("test.del.a")), [20], [3])
        assert_samples(read_all(backend, SeriesKey.of("test.del.b")), [15], [2])

    def test_deleted_series_leave_keys(self, backend: StorageBackend) -> None:
        self._flushed(backend, series_of("test.gone.x", {}, [0, 1], [1, 2]))
        assert backend.delete_before(MAX_NS) >= 2
        backend.flush()
        assert SeriesKey.of("test.gone.x") not in set(backend.keys())
        assert len(read_all(backend, SeriesKey.of("test.gone.x"))) == 0

    def test_delete_with_selector(self, backend: StorageBackend) -> None:
        if not backend.capabilities.deletes:
            pytest.skip(f"{type(backend).__name__} does not claim selective deletes")
        self._flushed(
            backend,
            series_of("test.dsel.x", {"host": "a"}, [0, 10], [1, 2]),
            series_of("test.dsel.x", {"host": "b"}, [0, 10], [1, 2]),
            series_of("test.dsel.y", {"host": "a"}, [0, 10], [1, 2]),
        )
        removed = backend.delete_before(T0 + 5 * SECOND, Selector.of("test.dsel.x", {"host": "a"}))
        assert removed == 1
        removed_all = backend.delete_before(MAX_NS, Selector.of("test.dsel.y"))
        assert removed_all == 2
        backend.flush()
        assert_samples(read_all(backend, SeriesKey.of("test.dsel.x", {"host": "a"})), [10], [2])
        assert_samples(
            read_all(backend, SeriesKey.of("test.dsel.x", {"host": "b"})), [0, 10], [1, 2]
        )
        assert SeriesKey.of("test.dsel.y", {"host": "a"}) not in set(backend.keys())

    def test_exact_selector_delete_spares_supersets(self, backend: StorageBackend) -> None:
        if not backend.capabilities.deletes:
            pytest.skip(f"{type(backend).__name__} does not claim selective deletes")
        plain = series_of("test.exact.x", {}, [0], [1])
        tagged = series_of("test.exact.x", {"host": "a"}, [0], [2])
        self._flushed(backend, plain, tagged)
        assert backend.delete_before(MAX_NS, Selector.for_key(plain.key)) == 1
        backend.flush()
        assert len(read_all(backend, tagged.key)) == 1
        assert len(read_all(backend, plain.key)) == 0

    def test_stats(self, backend: StorageBackend) -> None:
        before = backend.stats()
        self._flushed(
            backend,
            series_of("test.stats.x", {"i": "1"}, [0, 1, 2], [1, 2, 3]),
            series_of("test.stats.x", {"i": "2"}, [0, 1], [1, 2]),
        )
        after = backend.stats()
        assert after.samples - before.samples == 5
        assert after.series - before.series == 2
        assert after.bytes > 0
