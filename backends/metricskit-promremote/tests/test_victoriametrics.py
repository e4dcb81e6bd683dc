"""VictoriaMetrics behaviour beyond the conformance suite: mapping, NaN, deletes, errors."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import metricskit as mk
import numpy as np
import pytest
import requests
from metricskit.errors import BackendError, BackendUnavailableError, InvalidMetricError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS

from metricskit_promremote import VictoriaMetricsBackend
from metricskit_promremote.servers import Server, free_port

pytestmark = pytest.mark.services

T0 = 1_795_046_400 * 10**9
S = 10**9


@pytest.fixture
def vm(victoriametrics: Server) -> Iterator[VictoriaMetricsBackend]:
    backend = VictoriaMetricsBackend(victoriametrics.url)
    backend.delete_before(MAX_NS)
    yield backend
    backend.close()


def _export(server: Server, match: str) -> list[dict[str, object]]:
    response = requests.post(
        f"{server.http}/api/v1/export", data={"match[]": match, "start": "0"}, timeout=10
    )
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line]


def _series(name: str, tags: dict[str, str], ts: list[int], values: list[float]) -> Series:
    return Series(SeriesKey.of(name, tags), np.array(ts, dtype=np.int64), np.array(values))


def test_open_store_finds_the_plugin_by_entry_point(victoriametrics: Server) -> None:
    with mk.open_store(victoriametrics.url) as store:
        assert isinstance(store.backend, VictoriaMetricsBackend)


def test_names_map_to_prometheus_and_back(
    vm: VictoriaMetricsBackend, victoriametrics: Server
) -> None:
    vm.write([_series("system.cpu.usage_percent", {"host": "web1"}, [T0], [12.5])])
    vm.flush()
    (row,) = _export(victoriametrics, '{__name__="system_cpu_usage_percent"}')
    assert row["metric"] == {
        "__name__": "system_cpu_usage_percent",
        "mk_name": "system.cpu.usage_percent",
        "host": "web1",
    }
    assert list(vm.keys()) == [SeriesKey.of("system.cpu.usage_percent", {"host": "web1"})]


def test_colliding_prometheus_names_stay_apart(vm: VictoriaMetricsBackend) -> None:
    vm.write([_series("a.b_c", {}, [T0], [1.0]), _series("a_b.c", {}, [T0], [2.0])])
    vm.flush()
    assert vm.read(SeriesKey.of("a.b_c"), MIN_NS, MAX_NS).values.tolist() == [1.0]
    assert vm.read(SeriesKey.of("a_b.c"), MIN_NS, MAX_NS).values.tolist() == [2.0]


def test_series_from_other_tools_read_by_prometheus_name(
    vm: VictoriaMetricsBackend, victoriametrics: Server
) -> None:
    body = f'node_load1{{instance="h1"}} 0.5 {T0 // 10**6}\n'
    requests.post(f"{victoriametrics.http}/api/v1/import/prometheus", data=body, timeout=10)
    vm.flush()
    key = SeriesKey.of("node_load1", {"instance": "h1"})
    assert key in set(vm.keys())
    assert vm.read(key, MIN_NS, MAX_NS).values.tolist() == [0.5]


def test_reserved_name_label_is_refused(vm: VictoriaMetricsBackend) -> None:
    with pytest.raises(InvalidMetricError, match="mk_name"):
        vm.write([_series("x.y", {"mk_name": "z"}, [T0], [1.0])])


def test_nan_is_sent_as_staleness_marker(
    vm: VictoriaMetricsBackend, victoriametrics: Server
) -> None:
    vm.write([_series("test.nan.marker", {}, [T0, T0 + S], [float("nan"), 1.0])])
    vm.flush()
    got = vm.read(SeriesKey.of("test.nan.marker"), MIN_NS, MAX_NS)
    assert math.isnan(got.values[0]) and got.values[1] == 1.0
    (row,) = _export(victoriametrics, '{__name__="test_nan_marker"}')
    assert math.isnan(row["values"][0])  # stored (an ordinary NaN would have been dropped)


def test_timestamps_floor_to_milliseconds(vm: VictoriaMetricsBackend) -> None:
    key = SeriesKey.of("test.ms.floor")
    vm.write(
        [Series(key, np.array([T0 + 1_999_999, T0 + 1_000_001, T0 + 5]), np.array([1.0, 2.0, 3.0]))]
    )
    vm.flush()
    got = vm.read(key, MIN_NS, MAX_NS)
    assert got.timestamps.tolist() == [T0, T0 + 10**6]
    assert got.values.tolist() == [3.0, 2.0]  # same ms within a batch: the later write wins
    # Half-open ranges hold in ns: the sample read back at T0 + 1ms is inside [T0+1ms, ...).
    assert len(vm.read(key, T0 + 10**6, T0 + 10**6 + 1)) == 1
    assert len(vm.read(key, T0 + 1, T0 + 10**6)) == 0


def test_partial_delete_without_rewrite_refuses_and_keeps_data(vm: VictoriaMetricsBackend) -> None:
    vm.write([_series("test.pdel.x", {}, [T0, T0 + 10 * S], [1.0, 2.0])])
    vm.flush()
    with pytest.raises(BackendError, match="whole series"):
        vm.delete_before(T0 + 5 * S)
    assert len(vm.read(SeriesKey.of("test.pdel.x"), MIN_NS, MAX_NS)) == 2
    # A cutoff past every sample of the series is a whole-series delete: that works.
    assert vm.delete_before(T0 + 11 * S, Selector.of("test.pdel.x")) == 2
    assert SeriesKey.of("test.pdel.x") not in set(vm.keys())


def test_overwrite_without_rewrite_keeps_one_value_per_timestamp(
    vm: VictoriaMetricsBackend,
) -> None:
    key = SeriesKey.of("test.dup.plain")
    vm.write([_series("test.dup.plain", {}, [T0, T0 + S], [1.0, 2.0])])
    vm.write([_series("test.dup.plain", {}, [T0 + S], [20.0])])
    vm.flush()
    got = vm.read(key, MIN_NS, MAX_NS)
    assert got.timestamps.tolist() == [T0, T0 + S]  # unique times; which value is the server's
    assert got.values[1] in (2.0, 20.0)


def test_rejected_request_is_a_clear_error(victoriametrics: Server) -> None:
    backend = VictoriaMetricsBackend(victoriametrics.url, write_path="/api/v1/nonexistent")
    with pytest.raises(BackendError, match="answered 4"):
        backend.write([_series("test.bad.path", {}, [T0], [1.0])])
    backend.close()


def test_unreachable_server_retries_then_raises_unavailable() -> None:
    port = free_port()  # nothing listens there
    backend = VictoriaMetricsBackend(f"victoriametrics://127.0.0.1:{port}?retries=2&backoff=0.01")
    with pytest.raises(BackendUnavailableError, match="after 3 attempts"):
        backend.write([_series("test.down.x", {}, [T0], [1.0])])
    with pytest.raises(BackendUnavailableError):
        backend.close()  # close flushes, and says so when it cannot
    with pytest.raises(BackendError, match="closed"):
        backend.read(SeriesKey.of("test.down.x"), MIN_NS, MAX_NS)


def test_url_options_and_keywords(victoriametrics: Server) -> None:
    backend = VictoriaMetricsBackend(victoriametrics.url + "?timeout=3&rewrite=1", timeout=7)
    assert backend.options.timeout == 7 and backend.options.rewrite is True
    backend.close()
    with pytest.raises(BackendError, match="unknown option"):
        VictoriaMetricsBackend(victoriametrics.url + "?bogus=1")
