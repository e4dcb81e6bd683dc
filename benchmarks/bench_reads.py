"""Reading one series through ``store.query(name, tags=...)`` against ArcticDB's ``lib.read``.

The reference dataset (1,000 series x 10,000 points) is written once into the store the
URL names and into an ArcticDB LMDB library (one symbol per series, the layout ArcticDB
recommends for this), then the same series are read from both, interleaved, in one process.
Printed: per-read milliseconds (the median over the sampled series of each one's best of
``--repeat``) for ``store.query``, the bare ``backend.read`` and ArcticDB, and the ratio.

    python benchmarks/bench_reads.py                          # parquet:// in a temp dir
    python benchmarks/bench_reads.py --url sqlite:///tmp/x.db # any store URL (emptied first)
    python benchmarks/bench_reads.py --smoke                  # tiny, for CI
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dataset
from metricskit.model import SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS
from metricskit.store import Store, open_store


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in milliseconds."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out) * 1e3


def fill_store(store: Store, data: dataset.Dataset) -> None:
    store.delete()
    batch = data.batch()
    for i in range(0, len(batch), 100):  # bounded memory for SQL drivers
        store.write(batch[i : i + 100])  # type: ignore[arg-type]
    store.flush()


def fill_arctic(uri: str, data: dataset.Dataset) -> object:
    import arcticdb as adb
    import pandas as pd

    lib = adb.Arctic(uri).get_library("bench", create_if_missing=True)
    index = pd.DatetimeIndex(data.timestamps_ns.view("datetime64[ns]"))
    for i, labels in enumerate(data.labels):
        lib.write(labels["series"], pd.DataFrame({"value": data.values[i]}, index=index))
    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    ap.add_argument("--url", default=None, help="store URL (default: parquet:// in a temp dir)")
    ap.add_argument("--series", type=int, default=None)
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--sample", type=int, default=None, help="series timed (spread over all)")
    ap.add_argument("--repeat", type=int, default=None, help="timed reads per series (best)")
    ap.add_argument("--cache-dir", default=os.environ.get("METRICSKIT_BENCH_CACHE"))
    args = ap.parse_args()
    n_series = args.series or (20 if args.smoke else dataset.N_SERIES)
    n_points = args.points or (500 if args.smoke else dataset.N_POINTS)
    sample = args.sample or (4 if args.smoke else 50)
    repeat = args.repeat or (3 if args.smoke else 7)

    data = dataset.arrays(n_series, n_points, cache_dir=args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        url = args.url or f"parquet://{tmp}/store"
        t = time.perf_counter()
        store = open_store(url)
        fill_store(store, data)
        print(f"store {url}: {data.n_samples:,} samples written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        lib = fill_arctic(f"lmdb://{tmp}/arctic", data)
        print(f"ArcticDB (LMDB, one symbol per series) written in {time.perf_counter() - t:.1f} s")

        chosen = sorted(random.Random(0).sample(range(n_series), min(sample, n_series)))
        ours: list[float] = []
        bare: list[float] = []
        anchor: list[float] = []
        for i in chosen:
            name, labels = data.names[i], data.labels[i]
            key = SeriesKey.of(name, labels)
            got = store.query(name, tags=labels)
            assert len(got) == 1 and len(got[0]) == n_points, "store returned the wrong series"
            symbol = labels["series"]
            assert len(lib.read(symbol).data) == n_points  # type: ignore[attr-defined]
            # interleaved per series, so load from other jobs hits all three alike
            ours.append(best_ms(lambda n=name, t=labels: store.query(n, tags=t), repeat))
            bare.append(best_ms(lambda k=key: store.backend.read(k, MIN_NS, MAX_NS), repeat))
            anchor.append(best_ms(lambda s=symbol: lib.read(s).data, repeat))  # type: ignore[attr-defined]
        store.close()

    q, r, a = statistics.median(ours), statistics.median(bare), statistics.median(anchor)
    print(
        f"\nread one {n_points:,}-sample series ({len(chosen)} series, median of each "
        f"one's best of {repeat}):"
    )
    print(f"  store.query(name, tags=...)   {q:8.3f} ms")
    print(f"  backend.read(key)             {r:8.3f} ms")
    print(f"  ArcticDB lib.read(symbol)     {a:8.3f} ms")
    print(f"  query overhead over the backend read: {q - r:+.3f} ms")
    print(f"  ratio store.query / ArcticDB: {q / a:.2f}x  (goal <= 1.0x)")


if __name__ == "__main__":
    main()
