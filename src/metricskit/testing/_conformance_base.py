"""What the conformance suite's test classes share: sample data, helpers and fixtures.

Public names in a private module: the suite's own modules use them; plugin authors use
:class:`metricskit.testing.BackendConformance` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from metricskit.model import Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend

__all__ = [
    "SECOND",
    "T0",
    "ConformanceBase",
    "OpenBackend",
    "assert_last_like_read",
    "assert_samples",
    "read_all",
    "series_of",
]

T0 = 1_795_046_400 * 10**9
SECOND = 10**9

OpenBackend = Callable[[], StorageBackend]


def series_of(name: str, tags: dict[str, str], ts_s: list[float], values: list[float]) -> Series:
    """A series of ``name`` with samples at ``T0 + ts_s`` seconds."""
    key = SeriesKey.of(name, tags)
    ts = np.array([T0 + round(t * SECOND) for t in ts_s], dtype=np.int64)
    return Series(key, ts, np.array(values, dtype=np.float64))


def read_all(backend: StorageBackend, key: SeriesKey) -> Series:
    """Every stored sample of ``key``."""
    return backend.read(key, MIN_NS, MAX_NS)


def assert_samples(got: Series, ts_s: list[float], values: list[float]) -> None:
    """``got`` holds exactly these samples (``T0 + ts_s`` seconds), with the contract's dtypes."""
    expected_ts = np.array([T0 + round(t * SECOND) for t in ts_s], dtype=np.int64)
    assert got.timestamps.dtype == np.int64
    assert got.values.dtype == np.float64
    np.testing.assert_array_equal(got.timestamps, expected_ts)
    np.testing.assert_array_equal(got.values, np.array(values, dtype=np.float64))


def assert_last_like_read(backend: StorageBackend, key: SeriesKey) -> None:
    """last() equals read()'s newest sample for ranges cutting every way."""
    stored = read_all(backend, key).timestamps.tolist()
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


class ConformanceBase:
    """The fixtures every part of the suite uses; ``open_backend`` is the subclass's."""

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
