"""Several processes (standing for several hosts) record into one VictoriaMetrics at once."""

from __future__ import annotations

import multiprocessing

import metricskit as mk
import numpy as np
import pytest
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS

from metricskit_promremote.servers import Server

pytestmark = pytest.mark.services

T0 = 1_795_046_400 * 10**9
HOSTS = 4
BATCHES = 20
PER_BATCH = 50


def _host_writer(url: str, host: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait(30)  # all hosts write at the same time
    with mk.open_store(url) as store:
        for b in range(BATCHES):
            ts = T0 + (b * PER_BATCH + np.arange(PER_BATCH, dtype=np.int64)) * 10**9
            store.write(
                [
                    Series(
                        SeriesKey.of("system.cpu.usage_percent", {"host": host}), ts, ts % 97 / 1.0
                    ),
                    Series(
                        SeriesKey.of("system.memory.used_bytes", {"host": host}),
                        ts,
                        np.full(PER_BATCH, 1e9),
                    ),
                ]
            )
        store.flush()


def test_hosts_write_concurrently_and_one_reader_sees_all(victoriametrics: Server) -> None:
    with mk.open_store(victoriametrics.url) as reader:
        reader.backend.delete_before(MAX_NS)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    hosts = [f"host-{i}" for i in range(HOSTS)]
    procs = [ctx.Process(target=_host_writer, args=(victoriametrics.url, h, start)) for h in hosts]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with mk.open_store(victoriametrics.url) as reader:
        reader.flush()
        cpu = reader.backend.query(Selector.of("system.cpu.usage_percent"), MIN_NS, MAX_NS)
        by_host = {s.tags["host"]: s for s in cpu}
        assert sorted(by_host) == hosts
        expected_ts = T0 + np.arange(BATCHES * PER_BATCH, dtype=np.int64) * 10**9
        for series in by_host.values():
            np.testing.assert_array_equal(series.timestamps, expected_ts)
            np.testing.assert_array_equal(series.values, expected_ts % 97 / 1.0)
        frame = reader.frame("system.memory.used_bytes")
        assert frame.groupby("host", observed=True).size().to_dict() == {
            h: BATCHES * PER_BATCH for h in hosts
        }
        assert reader.backend.stats().series == 2 * HOSTS
