"""The memory backend's name and tag indexes, and its shared timestamp copies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from metricskit.model import Selector, Series, SeriesKey, Tags
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.storage.memory import MemoryBackend

TS = np.arange(5, dtype=np.int64)


def _filled() -> MemoryBackend:
    backend = MemoryBackend()
    batch = []
    for name, host, region in itertools.product(("a.x", "a.y", "b.z"), "123", ("eu", "us")):
        tags = {"host": host, "region": region} if host != "3" else {"host": host}
        batch.append(Series(SeriesKey.of(name, tags), TS, np.ones(5)))
    backend.write(batch)
    return backend


SELECTORS = [
    Selector(),
    Selector("a.x"),
    Selector("nope"),
    Selector.of(None, {"host": "1"}),
    Selector.of("a.y", {"host": "2", "region": "us"}),
    Selector.of("a.y", {"region": "nowhere"}),
    Selector.of("b.z", {"host": "3"}, exact=True),
    Selector.of("b.z", {"host": "1"}, exact=True),
    Selector.of(None, {"host": "3"}, exact=True),
    Selector("a.x", Tags(), exact=True),
]


@pytest.mark.parametrize("selector", SELECTORS, ids=str)
def test_indexed_select_and_query_equal_the_scan(selector: Selector) -> None:
    backend = _filled()
    scanned = sorted(StorageBackend.select(backend, selector))
    assert sorted(backend.select(selector)) == scanned
    assert [s.key for s in backend.query(selector, MIN_NS, MAX_NS)] == scanned
    assert list(backend.query(selector, 100, 200)) == []  # no sample in range: left out


def test_deleted_series_leave_the_indexes() -> None:
    backend = _filled()
    gone = Selector.of("a.x", {"host": "1"})
    assert backend.delete_before(MAX_NS, gone) == 2 * 5
    assert list(backend.select(gone)) == []
    assert sorted(backend.select(Selector("a.x"))) == sorted(
        k for k in backend.keys() if k.name == "a.x"
    )
    assert len(list(backend.select(Selector("a.x")))) == 3
    backend.delete_before(MAX_NS)
    assert backend._by_name == {} and backend._by_tag == {}
    key = SeriesKey.of("a.x", {"host": "1"})
    backend.write([Series(key, TS, np.zeros(5))])
    assert list(backend.select(gone)) == [key]


def test_a_batch_sharing_timestamps_shares_one_private_copy() -> None:
    backend = MemoryBackend()
    ts = np.arange(10, dtype=np.int64)
    k1, k2 = SeriesKey.of("m.a"), SeriesKey.of("m.b")
    backend.write([Series(k1, ts, np.ones(10)), Series(k2, ts, np.zeros(10))])
    ts[:] = 99  # the caller's array is not the store's
    a, b = backend.read(k1, MIN_NS, MAX_NS), backend.read(k2, MIN_NS, MAX_NS)
    assert a.timestamps.tolist() == list(range(10)) and b.timestamps.tolist() == list(range(10))
    assert np.shares_memory(a.timestamps, b.timestamps)
    # appending to one series leaves the other's timestamps alone
    backend.write([Series(k1, np.array([10, 3], dtype=np.int64), np.array([7.0, 8.0]))])
    a, b = backend.read(k1, MIN_NS, MAX_NS), backend.read(k2, MIN_NS, MAX_NS)
    assert a.timestamps.tolist() == list(range(11)) and a.values[3] == 8.0
    assert b.timestamps.tolist() == list(range(10))
