"""SQL block layout vs ArcticDB on the reference dataset: bytes/sample, write, one-series read.

Anchor: ArcticDB (LMDB, one symbol per series, ``write_batch`` of every series, then
``lib.read`` of one symbol). metricskit: ``store.write`` of every series in one call into
``sqlite:///`` (closed, so the WAL is checkpointed, then the file measured), then
``store.query(name, tags=...)`` of one 10,000-sample series (and ``backend.read``). With
``--servers``, PostgreSQL and MariaDB on 127.0.0.1 are measured the same way (figures only).
Every value read back is compared bit for bit with what was written.

    python benchmarks/bench_sql_blocks.py                 # 1,000 x 10,000 (10M samples)
    python benchmarks/bench_sql_blocks.py --servers       # ... plus PostgreSQL and MariaDB
    python benchmarks/bench_sql_blocks.py --smoke         # tiny, for CI
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import dataset
from metricskit.model import Series
from metricskit.storage.base import MAX_NS, MIN_NS
from metricskit.storage.sql import SQLBackend
from metricskit.store import Store, open_store

PROMETHEUS, VICTORIAMETRICS = 4.81, 1.29
SERVERS = {
    "postgresql": os.environ.get(
        "METRICSKIT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "METRICSKIT_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}


def median_ms(fn: Callable[[], object], reads: int) -> float:
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


class Arctic:
    """The anchor: one ArcticDB LMDB library, one symbol per series."""

    def __init__(self, root: Path, data: dataset.Dataset) -> None:
        import arcticdb as adb

        self.root = root
        self.lib = adb.Arctic(f"lmdb://{root}").get_library("bench", create_if_missing=True)
        index = pd.DatetimeIndex(data.timestamps_ns.astype("datetime64[ns]"))
        self.symbols = [
            f"{n}/{lab['series']}" for n, lab in zip(data.names, data.labels, strict=True)
        ]
        self.payloads = [
            adb.WritePayload(sym, pd.DataFrame({"value": data.values[i]}, index=index))
            for i, sym in enumerate(self.symbols)
        ]

    def write(self) -> float:
        start = time.perf_counter()
        results = self.lib.write_batch(self.payloads)
        elapsed = time.perf_counter() - start
        assert not any(hasattr(r, "error_code") for r in results), "ArcticDB write failed"
        return elapsed

    def read(self, i: int) -> np.ndarray:
        values: np.ndarray = self.lib.read(self.symbols[i]).data["value"].to_numpy()
        return values


def measure_store(url: str, data: dataset.Dataset, probe: int, reads: int, **options: object):
    """(write seconds, store, one-series query ms, backend.read ms) for one SQL URL."""
    batch = data.batch()
    store = open_store(url, **options)
    start = time.perf_counter()
    store.write(batch)  # type: ignore[arg-type]
    store.flush()
    elapsed = time.perf_counter() - start
    name, labels = data.names[probe], data.labels[probe]
    got = store.query(name, tags={"series": labels["series"]})
    assert len(got) == 1 and same_bits(got[0].values, data.values[probe]), "lossy round trip"
    assert np.array_equal(got[0].timestamps, data.timestamps_ns)
    key = got[0].key
    query_ms = median_ms(lambda: store.query(name, tags={"series": labels["series"]}), reads)
    read_ms = median_ms(lambda: store.backend.read(key, MIN_NS, MAX_NS), reads)
    return elapsed, store, query_ms, read_ms


def check_all(store: Store, data: dataset.Dataset) -> None:
    got = {s.key.tags["series"]: s for name in set(data.names) for s in store.query(name)}
    for i, labels in enumerate(data.labels):
        s: Series = got[labels["series"]]
        assert same_bits(s.values, data.values[i]), f"series {i} not bit-exact"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    ap.add_argument("--servers", action="store_true", help="also PostgreSQL and MariaDB")
    ap.add_argument("--series", type=int)
    ap.add_argument("--points", type=int)
    ap.add_argument("--reads", type=int)
    ap.add_argument("--cache-dir", default=os.environ.get("METRICSKIT_BENCH_CACHE"))
    args = ap.parse_args()
    n_series = args.series or (20 if args.smoke else dataset.N_SERIES)
    n_points = args.points or (2_000 if args.smoke else dataset.N_POINTS)
    reads = args.reads or (5 if args.smoke else 50)
    data = dataset.arrays(n_series, n_points, cache_dir=args.cache_dir)
    samples = data.n_samples
    probe = n_series // 4  # a gauge in the middle of the store
    print(f"dataset: {n_series:,} series x {n_points:,} points = {samples:,} samples")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        arctic = Arctic(tmp / "arctic", data)
        arctic_write = arctic.write()
        arctic_bytes = tree_bytes(tmp / "arctic")
        assert same_bits(arctic.read(probe), data.values[probe])
        arctic_read = median_ms(lambda: arctic.read(probe), reads)

        db = tmp / "metrics.db"
        ours_write, store, ours_query, ours_read = measure_store(
            f"sqlite:///{db}", data, probe, reads
        )
        check_all(store, data)
        store.close()
        ours_bytes = sum(
            Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists()
        )

        print("bytes/sample (on disk, after close)")
        print(f"  ArcticDB 6.28 LMDB:        {arctic_bytes / samples:7.2f}")
        print(f"  metricskit sqlite:///      {ours_bytes / samples:7.2f}  "
              f"(goal <= 2.0, stretch <= {VICTORIAMETRICS}; Prometheus {PROMETHEUS})")  # fmt: skip
        print(f"  bytes ratio (metricskit / ArcticDB): {ours_bytes / arctic_bytes:.2f}x")
        print("write: every series in one call (ArcticDB write_batch, metricskit store.write)")
        print(f"  ArcticDB:   {samples / arctic_write / 1e6:7.2f} M samples/s")
        print(f"  metricskit: {samples / ours_write / 1e6:7.2f} M samples/s")
        print(
            f"  write ratio (metricskit / ArcticDB): {arctic_write / ours_write:.2f}x  (goal >= 2x)"
        )
        print(f"read: one {n_points:,}-sample series, median of {reads}")
        print(f"  ArcticDB lib.read:                  {arctic_read:7.2f} ms")
        print(f"  metricskit store.query(name, tags=): {ours_query:7.2f} ms")
        print(f"  metricskit backend.read:             {ours_read:7.2f} ms")
        print(
            f"  read ratio (metricskit query / ArcticDB): {ours_query / arctic_read:.2f}x"
            "  (goal <= 1.0x)"
        )

        if args.servers:
            for kind, url in SERVERS.items():
                prefix = f"bench{uuid.uuid4().hex[:8]}_"
                try:
                    wrote, store, query_ms, read_ms = measure_store(
                        url, data, probe, reads, table_prefix=prefix
                    )
                except Exception as exc:  # a server that is down is reported, not fatal
                    print(f"{kind}: not measured ({type(exc).__name__}: {exc})")
                    continue
                try:
                    backend = store.backend
                    assert isinstance(backend, SQLBackend)
                    if kind == "mariadb":  # InnoDB's size estimate is stale until analysed
                        with backend._engine.begin() as conn:
                            for table in backend._tables.metadata.sorted_tables:
                                conn.exec_driver_sql(f"ANALYZE TABLE {table.name}").all()
                    used = store.stats()["bytes"]
                    print(f"{kind}: {samples / wrote / 1e6:.2f} M samples/s write, "
                          f"{used / samples:.2f} bytes/sample, query {query_ms:.2f} ms, "
                          f"backend.read {read_ms:.2f} ms")  # fmt: skip
                finally:
                    backend = store.backend
                    assert isinstance(backend, SQLBackend)
                    backend._tables.metadata.drop_all(backend._engine)
                    store.close()


if __name__ == "__main__":
    main()
