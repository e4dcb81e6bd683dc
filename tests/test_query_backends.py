"""PromQL on every kind of store: SQLite files, a second process's writes, read-once.

Queries hold no state of their own; what matters is that they see what the backend
holds, across a reopen and from another process, and read each series once per query.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from metricskit import Series, SeriesKey, open_store
from metricskit.model import Selector
from metricskit.storage._sql_schema import Tables
from metricskit.storage.base import StorageBackend
from metricskit.storage.memory import MemoryBackend
from metricskit.store import Store
from tests.services import MARIADB_URL, POSTGRES_URL, require_database

S = 1_000_000_000
T0 = 1_700_000_000
EXPR = "sum by (job) (rate(app_requests_total[2m]))"


def _fill(store: Store) -> None:
    ts = (T0 + np.arange(0, 600, 10)) * S
    for job, per_s in (("a", 3.0), ("b", 0.5)):
        values = per_s * (ts - ts[0]) / S
        store.write([Series(SeriesKey.of("app.requests.total", {"job": job}), ts, values)])


def _answer(store: Store) -> dict[str, float]:
    frame = store.promql(EXPR, time=T0 + 300)
    return {j: round(v, 9) for j, v in zip(frame["job"], frame["value"], strict=True)}


def test_sqlite_store_after_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with open_store(url) as store:
        _fill(store)
        before = _answer(store)
    with open_store(url) as store:
        assert _answer(store) == before == {"a": 3.0, "b": 0.5}
        ranged = store.promql_range(EXPR, T0 + 200, T0 + 400, "100s")
        assert len(ranged) == 6


def test_query_sees_another_process_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    code = textwrap.dedent(
        f"""
        import numpy as np
        from metricskit import open_store
        from tests.test_query_backends import _fill
        with open_store({url!r}) as store:
            _fill(store)
        """
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)
    with open_store(url) as store:
        assert _answer(store) == {"a": 3.0, "b": 0.5}


class CountingBackend(MemoryBackend):
    """A memory backend that counts the samples read per series."""

    reads: dict[SeriesKey, int]

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().read(key, start_ns, end_ns)

    def query(self, selector: Selector, start_ns: int, end_ns: int):  # type: ignore[no-untyped-def]
        return StorageBackend.query(self, selector, start_ns, end_ns)


def test_each_series_is_read_once_per_query() -> None:
    backend = CountingBackend("memory://")
    backend.reads = {}
    store = Store(backend)
    _fill(store)
    other = SeriesKey.of("other.metric", {"job": "a"})
    store.write([Series(other, np.array([T0 * S]), np.ones(1))])
    expr = (
        "rate(app_requests_total[1m]) / on (job) group_left sum by (job) "
        "(app_requests_total offset 1m) + max_over_time(app_requests_total[5m:30s])"
    )
    store.promql_range(expr, T0 + 100, T0 + 500, "50s")
    assert sorted(k.tags["job"] for k in backend.reads) == ["a", "b"]  # not other.metric
    assert set(backend.reads.values()) == {1}


KINDS = ["memory", "sqlite", "parquet", "postgresql", "mariadb"]
EXPRESSIONS = [
    EXPR,
    'max by (job) (app_requests_total{job=~"a|b"} offset 1m) / on () '
    "group_left count(app_requests_total)",
    "avg_over_time(deriv(app_requests_total[1m])[3m:30s])",
]


@contextlib.contextmanager
def _store_of(kind: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of ``kind``; server tables get their own prefix, dropped afterwards."""
    prefix = f"mkq{uuid.uuid4().hex[:8]}_"
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'm.db'}",
        "parquet": f"parquet:///{tmp_path / 'pq'}",
    }
    options: dict[str, str] = {}
    if kind in ("postgresql", "mariadb"):
        urls[kind] = require_database(POSTGRES_URL if kind == "postgresql" else MARIADB_URL)
        options = {"table_prefix": prefix}
    store = open_store(urls[kind], **options)
    try:
        yield store
    finally:
        store.close()
        if options:
            engine = sa.create_engine(urls[kind])
            try:
                Tables(prefix).metadata.drop_all(engine)
            finally:
                engine.dispose()


@pytest.mark.services
@pytest.mark.parametrize("kind", KINDS)
def test_same_answers_on_every_backend(kind: str, tmp_path: Path) -> None:
    reference = open_store("memory://")
    _fill(reference)
    with _store_of(kind, tmp_path) as store:
        _fill(store)
        store.flush()
        for expr in EXPRESSIONS:
            want = reference.promql_range(expr, T0 + 200, T0 + 500, "50s")
            got = store.promql_range(expr, T0 + 200, T0 + 500, "50s")
            assert not want.empty, expr
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


@pytest.mark.services
@pytest.mark.parametrize("kind", KINDS)
def test_read_many_and_names_agree_with_read(kind: str, tmp_path: Path) -> None:
    """The push-down a query reads through: per key what ``read`` gives, empty or not."""
    with _store_of(kind, tmp_path) as store:
        ts = (T0 + np.arange(0, 600, 10)) * S
        # more keys than one IN (...) list holds, on a shared and on their own timestamps
        keys = [SeriesKey.of("many.metric", {"i": str(i)}) for i in range(520)]
        store.write([Series(k, ts if i % 2 else ts + i, np.arange(60.0) * i)
                     for i, k in enumerate(keys)])  # fmt: skip
        _fill(store)
        store.flush()
        backend = store.backend
        assert backend.names() == {"many.metric", "app.requests.total"}
        wanted = [*keys[::-1], SeriesKey.of("no.such.metric"), keys[3]]
        for lo, hi in ((T0 * S, (T0 + 600) * S), ((T0 + 95) * S, (T0 + 305) * S), (0, 1)):
            got = backend.read_many(wanted, lo, hi)
            assert [s.key for s in got] == wanted
            for series in got:
                assert series.equals(backend.read(series.key, lo, hi)), series.key
        assert backend.read_many([], 0, 1) == []


def test_sql_decoded_block_cache_is_never_stale_and_stays_bounded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    ts = (T0 + np.arange(0, 20_000, 10)) * S  # 2,000 samples: written as blocks
    lo, hi = T0 * S, (T0 + 20_000) * S
    keys = [SeriesKey.of("cached.metric", {"i": str(i)}) for i in range(40)]
    with open_store(url, read_cache_mb=0.25) as store, open_store(url) as writer:
        writer.write([Series(k, ts, np.arange(2000.0) + i) for i, k in enumerate(keys)])
        backend = store.backend
        decoded = backend._reads.decoded  # type: ignore[attr-defined]
        first = backend.read_many(keys[:2], lo, hi)
        assert len(decoded) == 2 and first[1].values[5] == 6.0
        # another process overwrites one sample: same block bounds, same size, new bytes
        writer.write([Series(keys[1], ts[5:6], np.array([7.0]))])
        again = backend.read_many(keys[:2], lo, hi)
        assert again[1].values[5] == 7.0 and again[0].equals(first[0])
        assert store.promql('cached_metric{i="1"}', time=T0 + 55)["value"].tolist() == [7.0]
        backend.read_many(keys, lo, hi)  # 40 x 32 kB: more than 0.25 MB
        assert 0 < decoded.nbytes <= 0.25 * 2**20 and len(decoded) < len(keys)
    with open_store(url, read_cache_mb=0) as store:
        store.backend.read_many(keys, lo, hi)
        assert len(store.backend._reads.decoded) == 0  # type: ignore[attr-defined]


class SelectCountingBackend(MemoryBackend):
    """A memory backend that records the selections asked of it."""

    selections: list[Selector]

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        self.selections.append(selector)
        return super().select(selector)


def test_a_name_regex_accepting_many_names_lists_the_keys_once() -> None:
    """A lookup per accepted name would be one SQL statement per name."""
    backend = SelectCountingBackend("memory://")
    backend.selections = []
    store = Store(backend)
    ts = np.array([T0 * S])
    names = [f"fam.m{i:02d}" for i in range(20)]
    store.write([Series(SeriesKey.of(n, {"job": "a"}), ts, np.ones(1)) for n in [*names, "x.y"]])
    few = store.promql('{__name__=~"fam_m0[0-2]"}', time=T0 + 1)
    assert sorted(few["__name__"]) == ["fam_m00", "fam_m01", "fam_m02"]
    assert sorted(s.name or "" for s in backend.selections) == names[:3]
    backend.selections.clear()
    many = store.promql('{__name__=~"fam_.+"}', time=T0 + 1)
    assert len(many) == 20 and backend.selections == [Selector()]
