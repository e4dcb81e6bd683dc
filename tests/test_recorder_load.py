"""Back-pressure: a Recorder whose writer is behind waits for it instead of dropping samples.

The loop of issue 13 at a tenth of a million samples per backend, with exact counts
(benchmarks/bench_recorder_load.py runs the full 10,000,000 samples).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from metricskit.errors import BackendUnavailableError
from metricskit.model import Series
from metricskit.recorder import Recorder
from metricskit.storage.memory import MemoryBackend

URLS = ["memory://", "sqlite:///{tmp}/load.db", "parquet:///{tmp}/pq"]
T0 = 1_732_752_000


def _load(rec: Recorder, series: int, per_series: int) -> None:
    ts = T0 + np.arange(per_series, dtype=np.float64)
    for s in range(series):
        values = np.full(per_series, float(s))
        rec.record_many("g", values=values, timestamps=ts, tags={"id": str(s)})


def _check(store: mk.Store, series: int, per_series: int) -> None:
    stats = store.stats()
    assert stats["samples"] == series * per_series
    assert stats["series"] == series
    got = store.query("g", tags={"id": str(series - 1)})
    assert len(got) == 1 and len(got[0]) == per_series
    assert set(got[0].values.tolist()) == {float(series - 1)}


@pytest.mark.parametrize("url", URLS)
def test_default_settings_store_every_sample(url: str, tmp_path: Path) -> None:
    store = mk.open_store(url.format(tmp=tmp_path))
    rec = Recorder(store)
    _load(rec, 100, 10_000)
    rec.close()
    assert rec.dropped == 0
    _check(store, 100, 10_000)
    store.close()


@pytest.mark.parametrize("url", URLS)
def test_a_writer_behind_makes_callers_wait_not_drop(url: str, tmp_path: Path) -> None:
    # 50x more samples than the buffer holds: every call past the first few must wait.
    store = mk.open_store(url.format(tmp=tmp_path))
    rec = Recorder(store, max_buffer=4_000, batch_size=1_000, flush_interval=None)
    _load(rec, 20, 10_000)
    for i in range(5_000):  # record() waits the same way
        rec.record("g", float(i), tags={"id": "single"}, timestamp=T0 + i)
    rec.close()
    assert rec.dropped == 0
    assert store.stats()["samples"] == 20 * 10_000 + 5_000
    store.close()


class _DownBackend(MemoryBackend):
    """A memory backend that is down until ``up`` is set (a real BackendError each time)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()

    def write(self, batch: Sequence[Series]) -> None:
        if not self.up.is_set():
            raise BackendUnavailableError("the database is down")
        super().write(batch)


def test_a_failing_store_drops_without_waiting_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = _DownBackend()
    store = mk.Store(backend)
    # A wait as long as the test timeout: if a call waited for a store that is down,
    # the test would hang instead of finishing.
    rec = Recorder(store, max_buffer=1_000, batch_size=100, flush_interval=None, max_wait=3600)
    rec.record("g", 1.0, timestamp=T0)
    with pytest.raises(mk.BackendError):
        rec.flush()  # the store is now known to fail
    with caplog.at_level(logging.WARNING, logger="metricskit.recorder"):
        for i in range(1, 3_000):
            rec.record("g", float(i), timestamp=T0 + i)
    assert rec.dropped == 2_000
    assert "the store is failing" in caplog.text and "the database is down" in caplog.text
    backend.up.set()
    rec.flush()
    assert len(store.query("g")[0]) == 1_000
    assert store.latest("metricskit.recorder.dropped")[0][2] == 2_000.0
    rec.close()


class _HungBackend(MemoryBackend):
    """A memory backend whose write blocks until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Sequence[Series]) -> None:
        self.entered.set()
        self.release.wait(60)
        super().write(batch)


def test_a_hung_store_bounds_the_wait_then_drops(caplog: pytest.LogCaptureFixture) -> None:
    backend = _HungBackend()
    rec = Recorder(
        mk.Store(backend), max_buffer=100, batch_size=10, flush_interval=None, max_wait=0.2
    )
    for i in range(10):
        rec.record("g", float(i), timestamp=T0 + i)
    assert backend.entered.wait(60)
    with caplog.at_level(logging.WARNING, logger="metricskit.recorder"):
        for i in range(10, 200):
            rec.record("g", float(i), timestamp=T0 + i)
    assert rec.dropped == 100
    assert "made no room within max_wait=0.2s" in caplog.text
    backend.release.set()
    rec.close()
    assert len(mk.Store(backend).query("g")[0]) == 100
