"""parquet:// backend on the reference dataset: bytes/sample and write throughput.

Prints on-disk bytes/sample (overall, gauges, counters) against Prometheus' TSDB (4.81) and
VictoriaMetrics (1.29) on the same data, the bytes/sample of alternative encodings, and
write throughput (write + flush, fsync included) against a bare
``pyarrow.parquet.write_table`` of the very same columns with the same encodings.

    python benchmarks/bench_parquet.py            # 1,000 x 10,000 = 10M samples (a minute or two)
    python benchmarks/bench_parquet.py --smoke    # tiny, for CI
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

import dataset
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage._parquet_format import WRITE_OPTIONS, decode_values
from metricskit.storage._parquet_layout import DAY_NS
from metricskit.storage._parquet_write import partition_table
from metricskit.storage.base import MAX_NS, MIN_NS
from metricskit.storage.parquet import ParquetBackend

PROMETHEUS = {"all": 4.81, "gauges": 7.07, "counters": 2.55}
VICTORIAMETRICS = {"all": 1.29, "gauges": 1.12, "counters": 1.49}
ROW_GROUP = 131_072  # the backend's default


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("day=*/*.parquet"))


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def timed_both(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def store_bytes(batch: list[Series], work: Path, label: str) -> float:
    root = work / f"size-{label}"
    with ParquetBackend(f"parquet://{root}", fsync=False) as backend:
        backend.write(batch)
    n = sum(len(s) for s in batch)
    size = dir_bytes(root)
    shutil.rmtree(root)
    return size / n


def day_tables(
    batch: list[Series], row_group: int = ROW_GROUP, *, aligned: bool = False
) -> list[object]:
    """The tables the backend writes for ``batch``: one per day partition.

    ``aligned=False`` cuts them into chunks of exactly ``row_group`` rows (the anchor's
    layout); ``aligned=True`` into the backend's own series-aligned row groups.
    """
    by_day: dict[int, dict[SeriesKey, tuple[np.ndarray, np.ndarray]]] = {}
    for s in batch:
        ts, vs = merge_last_wins([(s.timestamps, s.values)])
        days = ts // DAY_NS
        for day in np.unique(days):
            mask = days == day
            by_day.setdefault(int(day), {})[s.key] = (ts[mask], vs[mask])
    return [partition_table(by_day[d], row_group, aligned=aligned) for d in sorted(by_day)]


def encoding_options(batch: list[Series], work: Path) -> list[tuple[str, float]]:
    """bytes/sample of alternative encodings of the same rows (one file per day, no index)."""
    tables = day_tables(batch)
    n = sum(len(s) for s in batch)
    base = dict(WRITE_OPTIONS)
    as_float = [
        t.set_column(t.schema.get_field_index("value"), "value", _decoded(t)).drop_columns(
            ["value_int", "scale"]
        )
        for t in tables
    ]
    float_opts = {**base, "use_dictionary": ["name", "tags"]}
    variants: list[tuple[str, list[object], dict[str, object]]] = [
        (
            "float64 PLAIN + zstd",
            as_float,
            {**float_opts, "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value": "PLAIN"}},
        ),
        (
            "float64 BYTE_STREAM_SPLIT + zstd",
            as_float,
            {
                **float_opts,
                "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
            },
        ),
        (
            "scaled int64 PLAIN + zstd",
            tables,
            {**base, "column_encoding": {"ts": "DELTA_BINARY_PACKED", "value_int": "PLAIN"}},
        ),
        ("scaled int64 DELTA, no compression", tables, {**base, "compression": "none"}),
        ("scaled int64 DELTA + zstd (chosen)", tables, base),
        (
            "scaled int64 DELTA + zstd level 9 everywhere",
            tables,
            {**base, "compression": "zstd", "compression_level": 9},
        ),
    ]
    out = []
    for label, tabs, opts in variants:
        size = 0
        for i, t in enumerate(tabs):
            path = work / f"opt-{i}.parquet"
            pq.write_table(t, path, row_group_size=ROW_GROUP, **opts)
            size += path.stat().st_size
            path.unlink()
        out.append((label, size / n))
    for rgs in (32_768, 1_048_576):
        size = 0
        for i, t in enumerate(day_tables(batch, rgs)):
            path = work / f"rg-{i}.parquet"
            pq.write_table(t, path, row_group_size=rgs, **base)
            size += path.stat().st_size
            path.unlink()
        out.append((f"chosen, row groups of {rgs} rows", size / n))
    return out


def _decoded(table: object) -> object:
    import pyarrow as pa

    return pa.array(decode_values(table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    ap.add_argument("--series", type=int, default=None)
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None, help="timing runs (best and median)")
    ap.add_argument("--cache-dir", default=os.environ.get("METRICSKIT_BENCH_CACHE"))
    args = ap.parse_args()
    n_series = args.series or (20 if args.smoke else dataset.N_SERIES)
    n_points = args.points or (500 if args.smoke else dataset.N_POINTS)
    repeat = args.repeat or (2 if args.smoke else 3)

    t = time.perf_counter()
    data = dataset.arrays(n_series, n_points, cache_dir=args.cache_dir)
    batch = data.batch()
    gauges = [s for s in batch if s.name == "bench_gauge"]
    counters = [s for s in batch if s.name == "bench_counter_total"]
    print(
        f"dataset: {n_series} series x {n_points} points = {data.n_samples:,} samples "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        work = Path(tmp)
        sizes = {
            "all": store_bytes(batch, work, "all"),
            "gauges": store_bytes(gauges, work, "gauges"),
            "counters": store_bytes(counters, work, "counters"),
        }
        print("\non-disk bytes/sample   metricskit  Prometheus  VictoriaMetrics  vs VM")
        for label, value in sizes.items():
            print(
                f"  {label:20s} {value:10.3f}  {PROMETHEUS[label]:10.2f}  "
                f"{VICTORIAMETRICS[label]:15.2f}  {value / VICTORIAMETRICS[label]:5.2f}x"
            )

        if not args.smoke:
            print("\nencoding options (bytes/sample, whole dataset, one file per day):")
            for label, value in encoding_options(batch, work):
                print(f"  {label:40s} {value:.3f}")

        counter = iter(range(10**6))

        def write_backend() -> None:
            root = work / f"w{next(counter)}"
            backend = ParquetBackend(f"parquet://{root}")
            backend.write(batch)
            backend.flush()
            backend.close()

        tables = day_tables(batch)
        aligned = day_tables(batch, aligned=True)
        # one chunk of the dictionary-encoded name column per row group the backend writes
        group_sizes = [[len(c) for c in t.column("name").chunks] for t in aligned]

        def write_bare() -> None:
            root = work / f"b{next(counter)}"
            root.mkdir()
            for i, table in enumerate(tables):
                pq.write_table(
                    table, root / f"{i}.parquet", row_group_size=ROW_GROUP, **WRITE_OPTIONS
                )

        def write_bare_aligned() -> None:
            """pyarrow writing the backend's very row groups (series-aligned, own dictionaries)."""
            root = work / f"a{next(counter)}"
            root.mkdir()
            for i, table in enumerate(aligned):
                with pq.ParquetWriter(root / f"{i}.parquet", table.schema, **WRITE_OPTIONS) as w:
                    at = 0
                    for size in group_sizes[i]:
                        w.write_table(table.slice(at, size), row_group_size=size)
                        at += size

        ours: list[tuple[float, float]] = []
        bare: list[tuple[float, float]] = []
        same: list[tuple[float, float]] = []
        for _ in range(repeat):  # interleaved, so load from other jobs hits both alike
            ours.append(timed_both(write_backend))
            bare.append(timed_both(write_bare))
            same.append(timed_both(write_bare_aligned))
        n = data.n_samples
        print(f"\nwrite throughput, best / median of {repeat} interleaved rounds (shared 2 cores):")
        for label, runs in (
            ("metricskit write+flush+fsync", ours),
            ("bare pq.write_table", bare),
            ("bare, the same row groups", same),
        ):
            walls = [w for w, _ in runs]
            cpus = [c for _, c in runs]
            print(
                f"  {label:28s} wall {n / min(walls):12,.0f} samples/s "
                f"(median {n / statistics.median(walls):,.0f}); "
                f"CPU {n / min(cpus):12,.0f} samples/CPU-s"
            )
        for label, anchor in (
            (f"bare ({ROW_GROUP:,}-row groups)", bare),
            ("bare, the same row groups", same),
        ):
            wall_ratio = min(w for w, _ in anchor) / min(w for w, _ in ours)
            median_ratio = statistics.median(w for w, _ in anchor) / statistics.median(
                w for w, _ in ours
            )
            cpu_ratio = min(c for _, c in anchor) / min(c for _, c in ours)
            print(
                f"  ratio metricskit / {label}: wall best {wall_ratio:.2f}x, wall median "
                f"{median_ratio:.2f}x, CPU {cpu_ratio:.2f}x  (goal >= 0.8x)"
            )

        backend = ParquetBackend(f"parquet://{work / 'w0'}")
        key = batch[1].key
        one = timed(lambda: backend.read(key, MIN_NS, MAX_NS), 5)
        ks = timed(lambda: list(backend.keys()), 5)
        sel = Selector.of("bench_gauge")
        allg = timed(lambda: list(backend.query(sel, MIN_NS, MAX_NS)), 3)
        print("\nreads (warm, best of 5/5/3):")
        print(f"  read one series ({n_points} samples)   {min(one) * 1e3:8.1f} ms")
        print(f"  keys() ({n_series} series)              {min(ks) * 1e3:8.1f} ms")
        print(f"  query all gauges ({len(gauges)} series)    {min(allg) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
