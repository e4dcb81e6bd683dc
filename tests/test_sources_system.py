"""The System source against this machine's real psutil readings."""

from __future__ import annotations

import time

import psutil
import pytest

from metricskit.collect.sources import SYSTEM_METRICS, System
from metricskit.errors import InvalidMetricError


def _values(samples):
    return {s.name: s.value for s in samples}


def test_every_seed_metric_is_produced_in_range(tmp_path):
    src = System(disk_path=str(tmp_path))
    got = _values(src.collect())
    assert list(got) == list(SYSTEM_METRICS)
    assert 0.0 <= got["system.cpu.usage_percent"] <= 100.0
    assert 0.0 < got["system.memory.usage_percent"] <= 100.0
    total_gib = psutil.virtual_memory().total / 1024**3
    assert 0.0 < got["system.memory.available_gb"] <= total_gib
    assert 0.0 <= got["system.disk.usage_percent"] <= 100.0
    disk_gib = psutil.disk_usage(str(tmp_path)).total / 1024**3
    assert 0.0 < got["system.disk.free_gb"] <= disk_gib
    assert got["system.load.1min"] >= 0.0
    assert got["system.network.bytes_sent"] >= 0.0
    assert got["system.processes.count"] >= 1.0


def test_gb_is_gibibytes():
    got = _values(System(metrics=["system.memory.available_gb"]).collect())
    # psutil's figure moves between the two reads; a GB-vs-GiB mix-up would be off by 7 %
    expected = psutil.virtual_memory().available / 1024**3
    assert got["system.memory.available_gb"] == pytest.approx(expected, rel=0.02)


def test_network_counters_are_monotonic():
    src = System(metrics=["system.network.bytes_sent", "system.network.bytes_recv"])
    first = _values(src.collect())
    # make some loopback traffic so the counters have a reason to move
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()) as c:
            conn, _ = srv.accept()
            c.sendall(b"x" * 65536)
            conn.recv(65536)
            conn.close()
    second = _values(src.collect())
    for name in first:
        assert second[name] >= first[name]


def test_first_cpu_read_is_a_measurement_not_zero():
    # burn CPU in this process between construction and the first read: the window
    # covers it, so the figure cannot be the 0.0 psutil returns on a first call
    src = System(metrics=["system.cpu.usage_percent"], min_cpu_window=0.2)
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        pass
    (sample,) = src.collect()
    assert sample.value > 0.0


def test_cpu_first_read_waits_for_the_minimum_window():
    t0 = time.monotonic()
    src = System(metrics=["system.cpu.usage_percent"], min_cpu_window=0.2)
    src.collect()
    # a lower bound guaranteed by the sleep, not a speed claim: it waited instead of
    # dividing 0 by 0
    assert time.monotonic() - t0 >= 0.2


def test_metrics_subset_and_unknown_name():
    src = System(metrics=["system.load.1min", "system.processes.count"])
    assert [s.name for s in src.collect()] == ["system.load.1min", "system.processes.count"]
    with pytest.raises(InvalidMetricError, match=r"system\.cpu\.usage"):
        System(metrics=["system.cpu.usage"])
