"""Histogram totals: cumulative counters the Recorder keeps, so /metrics never re-reads history.

Prometheus' own client (prometheus_client.Histogram) is the reference for the bucket
counts, the sum and the count of the same observations.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import prometheus_client as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text

import metricskit as mk
from metricskit.catalog import DEFAULT_BUCKETS, histogram_parts
from metricskit.model import SeriesKey
from metricskit.recorder import REQUEST_METRIC
from metricskit.server.exposition import generate
from metricskit.storage.memory import MemoryBackend
from metricskit.testing import ManualClock
from tests.services import require_module

T0 = 1_732_752_000
TAGS = {"endpoint": "/api", "status": "200"}
LABELS = (("endpoint", "/api"), ("status", "200"))


def scrape(store: mk.Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate(store).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_text(text)
        for s in f.samples
    }


def reference(values: list[float]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What prometheus_client exposes for the same observations."""
    registry = pc.CollectorRegistry()
    hist = pc.Histogram(
        "http_request_duration_seconds",
        "d",
        ["endpoint", "status"],
        buckets=DEFAULT_BUCKETS,
        registry=registry,
    )
    for v in values:
        hist.labels(endpoint="/api", status="200").observe(v)
    text = pc.generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_text(text)
        for s in f.samples
        if not s.name.endswith("_created")
    }


def hist_samples(store: mk.Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {k: v for k, v in scrape(store).items() if k[0].startswith("http_request_duration")}


def durations(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in np.round(rng.exponential(0.5, n), 4)]


def record(store: mk.Store, values: list[float], start: int = 0) -> None:
    with mk.Recorder(store, clock=ManualClock(T0)) as rec:
        for i, v in enumerate(values):
            rec.record_request("/api", v, 200, timestamp=T0 + start + i)


@pytest.fixture
def store() -> Iterator[mk.Store]:
    with mk.open_store("memory://") as s:
        yield s


def test_totals_match_prometheus_client(store: mk.Store) -> None:
    values = [*durations(500, 1), 0.005, 0.1, 10.0, 100.0]  # a bound itself counts as <=
    record(store, values[:200])
    record(store, values[200:])
    assert hist_samples(store) == pytest.approx(reference(values))


def test_nan_is_not_an_observation(store: mk.Store) -> None:
    with mk.Recorder(store) as rec:
        rec.record_many(REQUEST_METRIC, [0.1, float("nan"), 0.2], [T0, T0 + 1, T0 + 2], TAGS)
    got = hist_samples(store)
    assert got[("http_request_duration_seconds_count", LABELS)] == 2


def test_counts_only_grow_whatever_retention_and_the_cap_delete(tmp_path: Path) -> None:
    store = mk.open_store(f"sqlite:///{tmp_path}/m.db", max_records_per_series=50)
    values = durations(300, 2)
    record(store, values[:150])
    assert len(store.query(REQUEST_METRIC)[0]) == 50  # the cap kept 50 observations
    first = hist_samples(store)
    assert first[("http_request_duration_seconds_count", LABELS)] == 150
    store.delete(REQUEST_METRIC, before=T0 + 10_000)  # retention: every observation goes
    assert store.query(REQUEST_METRIC) == []
    assert hist_samples(store) == first
    record(store, values[150:], start=150)
    assert hist_samples(store) == pytest.approx(reference(values))
    store.close()


def test_restart_resumes_the_totals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    values = durations(100, 3)
    with mk.open_store(url) as store:
        record(store, values[:60])
    with mk.open_store(url) as store:  # a new process would see exactly this
        record(store, values[60:], start=60)
        assert hist_samples(store) == pytest.approx(reference(values))
        counts = store.query(histogram_parts(REQUEST_METRIC).count)[0].values
        assert counts.tolist() == sorted(counts.tolist())  # the counter never went down


CHILD = """
import sys
import metricskit as mk
from metricskit.testing import ManualClock

values = [float(v) for v in sys.argv[3].split(",") if v]
with mk.open_store(sys.argv[1]) as store:
    if sys.argv[2] == "record":
        with mk.Recorder(store, clock=ManualClock({t0})) as rec:
            for i, v in enumerate(values):
                rec.record_request("/api", v, 200, timestamp={t0} + 1000 + i)
    else:
        from metricskit.server.exposition import generate
        sys.stdout.write(generate(store).decode())
"""


def test_a_second_process_continues_and_a_third_scrapes(tmp_path: Path) -> None:
    url = f"parquet:///{tmp_path}/pq"
    require_module("pyarrow")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(t0=T0))
    values = durations(80, 4)
    with mk.open_store(url) as store:
        record(store, values[:30])
    joined = ",".join(map(str, values[30:]))
    subprocess.run([sys.executable, str(script), url, "record", joined], check=True, timeout=120)
    out = subprocess.run(
        [sys.executable, str(script), url, "scrape", ""],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_text(out)
        for s in f.samples
        if s.name.startswith("http_request_duration")
    }
    assert got == pytest.approx(reference(values))


class _ReadLog(MemoryBackend):
    """A memory backend that remembers which series were read (for the scrape's cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.read_keys: list[SeriesKey] = []

    def read(self, key: SeriesKey, start_ns: int, end_ns: int):  # type: ignore[no-untyped-def]
        self.read_keys.append(key)
        return super().read(key, start_ns, end_ns)


def test_a_scrape_reads_no_observation() -> None:
    backend = _ReadLog()
    store = mk.Store(backend)
    record(store, durations(1000, 5))
    backend.read_keys.clear()
    assert hist_samples(store)[("http_request_duration_seconds_count", LABELS)] == 1000
    assert all(k.name != REQUEST_METRIC for k in backend.read_keys)


def test_custom_buckets_and_their_exposition(store: mk.Store) -> None:
    with mk.Recorder(store, histogram_buckets=[0.5, 0.1]) as rec:
        for v in (0.05, 0.1, 0.3, 2.0):
            rec.record_request("/api", v, 200, timestamp=T0)
    got = hist_samples(store)
    le = [(k[1], v) for k, v in got.items() if k[0].endswith("_bucket")]
    assert sorted((dict(labels)["le"], v) for labels, v in le) == [
        ("+Inf", 4.0),
        ("0.1", 2.0),
        ("0.5", 3.0),
    ]
    with pytest.raises(mk.InvalidArgumentError):
        mk.Recorder(store, histogram_buckets=[float("nan")])


class _DownBackend(MemoryBackend):
    """A memory backend that is down (reads and writes fail) until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    def _check(self) -> None:
        if not self.up:
            raise mk.BackendUnavailableError("down")

    def write(self, batch):  # type: ignore[no-untyped-def]
        self._check()
        super().write(batch)

    def last(self, key, start_ns, end_ns):  # type: ignore[no-untyped-def]
        self._check()
        return super().last(key, start_ns, end_ns)


def test_totals_survive_a_store_outage_counted_once() -> None:
    backend = _DownBackend()
    store = mk.Store(backend)
    values = durations(60, 6)
    rec = mk.Recorder(store, flush_interval=None)
    for attempt in range(3):  # observations arrive while every flush fails
        for i, v in enumerate(values[attempt * 20 : (attempt + 1) * 20]):
            rec.record_request("/api", v, 200, timestamp=T0 + attempt * 20 + i)
        with pytest.raises(mk.BackendError):
            rec.flush()
    backend.up = True
    rec.close()
    assert rec.dropped == 0
    assert hist_samples(store) == pytest.approx(reference(values))
