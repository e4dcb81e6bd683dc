"""What survives closing and reopening a backend (skipped where it is not ``persistent``)."""

from __future__ import annotations

import numpy as np
import pytest

from metricskit.model import SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS
from metricskit.testing._conformance_base import (
    SECOND,
    T0,
    ConformanceBase,
    OpenBackend,
    assert_last_like_read,
    read_all,
    series_of,
)

__all__ = ["PersistenceTests"]


class PersistenceTests(ConformanceBase):
    """Flushed data, a close without a flush and ``last()`` after reopening."""

    # -- persistence ------------------------------------------------------------------

    def test_reopen_keeps_flushed_data(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        s = series_of("test.persist.x", {"host": "a"}, [0, 10], [1, float("nan")])
        first.write([s])
        first.flush()
        first.close()
        second = open_backend()
        got = read_all(second, s.key)
        assert got.timestamps.tolist() == [T0, T0 + 10 * SECOND]
        assert got.values[0] == 1 and np.isnan(got.values[1])
        assert s.key in set(second.keys())

    def test_close_flushes(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        s = series_of("test.closeflush.x", {}, [0], [7])
        first.write([s])
        first.close()
        assert read_all(open_backend(), s.key).values.tolist() == [7]

    def test_last_after_reopen(self, open_backend: OpenBackend) -> None:
        first = open_backend()
        if not first.capabilities.persistent:
            pytest.skip(f"{type(first).__name__} is not persistent")
        key = SeriesKey.of("test.last.reopen", {"host": "a"})
        first.write([series_of("test.last.reopen", {"host": "a"}, [0, 10], [1, 2])])
        first.flush()
        first.write([series_of("test.last.reopen", {"host": "a"}, [10, 5], [20, 0.5])])
        first.close()
        second = open_backend()
        assert second.last(key, MIN_NS, MAX_NS) == (T0 + 10 * SECOND, 20.0)
        assert second.last(key, MIN_NS, T0 + 10 * SECOND) == (T0 + 5 * SECOND, 0.5)
        assert_last_like_read(second, key)
