"""promremote:// against a real Prometheus with its remote-write receiver."""

from __future__ import annotations

import math
from collections.abc import Iterator

import metricskit as mk
import numpy as np
import pytest
import requests
from metricskit.errors import BackendError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS

from metricskit_promremote import PromRemoteBackend
from metricskit_promremote.servers import Server

pytestmark = pytest.mark.services

T0 = 1_795_046_400 * 10**9
S = 10**9


@pytest.fixture
def prom(prometheus: Server) -> Iterator[PromRemoteBackend]:
    backend = PromRemoteBackend(prometheus.url)
    backend.delete_before(MAX_NS)
    yield backend
    backend.close()


def _series(name: str, tags: dict[str, str], ts: list[int], values: list[float]) -> Series:
    return Series(SeriesKey.of(name, tags), np.array(ts, dtype=np.int64), np.array(values))


def test_write_then_query_back_through_the_http_api(
    prom: PromRemoteBackend, prometheus: Server
) -> None:
    prom.write([_series("system.cpu.usage_percent", {"host": "web1"}, [T0, T0 + S], [1.5, 2.5])])
    # Prometheus' own API sees the mapped name and the mk_name label.
    response = requests.get(
        f"{prometheus.http}/api/v1/query",
        params={"query": "system_cpu_usage_percent[1h]", "time": (T0 + 2 * S) / S},
        timeout=10,
    )
    (row,) = response.json()["data"]["result"]
    assert row["metric"]["mk_name"] == "system.cpu.usage_percent"
    assert [v for _, v in row["values"]] == ["1.5", "2.5"]
    key = SeriesKey.of("system.cpu.usage_percent", {"host": "web1"})
    assert list(prom.keys()) == [key]
    got = prom.read(key, MIN_NS, MAX_NS)
    assert got.timestamps.tolist() == [T0, T0 + S]
    assert got.values.tolist() == [1.5, 2.5]


def test_open_store_and_frame(prometheus: Server, prom: PromRemoteBackend) -> None:
    with mk.open_store(prometheus.url) as store:
        store.write([_series("app.requests.latency", {"route": "/a"}, [T0, T0 + S], [3, 4])])
        frame = store.frame("app.requests.latency")
        assert frame["value"].tolist() == [3.0, 4.0]
        assert set(frame["route"]) == {"/a"}


def test_half_open_ranges_nan_and_exact_values(prom: PromRemoteBackend) -> None:
    values = [0.1 + 0.2, float("nan"), 2.0**53 + 2, -1e300]
    key = SeriesKey.of("test.prom.values")
    prom.write([Series(key, T0 + np.arange(4, dtype=np.int64) * S, np.array(values))])
    got = prom.read(key, MIN_NS, MAX_NS).values
    assert got[0] == values[0] and math.isnan(got[1]) and got[2:].tolist() == values[2:]
    assert len(prom.read(key, T0 + S, T0 + 3 * S)) == 2
    assert len(prom.read(key, T0 + 3 * S, T0 + 3 * S + 1)) == 1
    assert len(prom.read(key, T0, T0)) == 0


def test_partial_delete_uses_the_admin_api(prom: PromRemoteBackend) -> None:
    prom.write(
        [
            _series("test.prom.del", {"host": "a"}, [T0, T0 + 10 * S], [1, 2]),
            _series("test.prom.del", {"host": "a", "x": "y"}, [T0], [3]),
        ]
    )
    exact = Selector.for_key(SeriesKey.of("test.prom.del", {"host": "a"}))
    assert prom.delete_before(T0 + 5 * S, exact) == 1
    assert prom.read(
        SeriesKey.of("test.prom.del", {"host": "a"}), MIN_NS, MAX_NS
    ).values.tolist() == [2]
    assert (
        len(prom.read(SeriesKey.of("test.prom.del", {"host": "a", "x": "y"}), MIN_NS, MAX_NS)) == 1
    )
    stats = prom.stats()
    assert stats.samples == 2 and stats.series == 2 and stats.bytes >= 0


def test_a_second_value_for_a_timestamp_is_refused(prom: PromRemoteBackend) -> None:
    prom.write([_series("test.prom.dup", {}, [T0], [1.0])])
    with pytest.raises(BackendError, match="400"):
        prom.write([_series("test.prom.dup", {}, [T0], [2.0])])
