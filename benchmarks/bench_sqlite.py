"""sqlite:/// backend against plain ``sqlite3``: ingest rows/s and single-series read time.

Ingest: S series x T ticks arriving tick by tick, written in batches of B ticks (a
Recorder flushing every B seconds of 1 Hz data). The anchor ``executemany``s the batch's
rows, pre-built as tuples in arrival order, into a ``WITHOUT ROWID (series_id, ts, value)``
table in WAL mode and commits per batch; metricskit gets the same batch as columnar
``Series`` and does everything (series ids, dedup, upsert, commit). The anchor is also
shown with ``synchronous=NORMAL`` (the setting metricskit uses) to separate that effect.

Read: one 10,000-sample series back into numpy (int64 ns, float64), in a file that also
holds the other series. Anchor: ``SELECT ts, value ... ORDER BY ts``, ``fetchall`` and
``np.array(rows)``. Best of several runs for ingest, median of many reads.

    python benchmarks/bench_sqlite.py            # 1,000 series x 1,000 ticks, batches of 10
    python benchmarks/bench_sqlite.py --smoke    # tiny, for CI
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metricskit.model import Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS
from metricskit.storage.sql import SQLBackend

T0 = 1_795_046_400 * 10**9
SECOND = 10**9
ANCHOR_TABLE = (
    "CREATE TABLE samples (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL, "
    "PRIMARY KEY (series_id, ts)) WITHOUT ROWID"
)


def make_data(series: int, ticks: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    ts = T0 + np.arange(ticks, dtype=np.int64) * SECOND
    values = np.round(rng.normal(50, 10, size=(ticks, series)), 3)
    return ts, values


def anchor_connect(path: Path, synchronous: str | None) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    if synchronous:
        con.execute(f"PRAGMA synchronous = {synchronous}")
    con.execute(ANCHOR_TABLE)
    con.commit()
    return con


def anchor_ingest(
    path: Path, ts: np.ndarray, values: np.ndarray, batch: int, synchronous: str | None
) -> float:
    ticks, series = values.shape
    batches = []
    for b in range(0, ticks, batch):
        ticks_in_batch = range(b, min(b + batch, ticks))
        batches.append(
            [(s, int(ts[i]), float(values[i, s])) for i in ticks_in_batch for s in range(series)]
        )
    con = anchor_connect(path, synchronous)
    start = time.perf_counter()
    for rows in batches:
        con.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
        con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def our_batches(ts: np.ndarray, values: np.ndarray, batch: int) -> list[list[Series]]:
    ticks, series = values.shape
    keys = [SeriesKey.of("bench.sqlite.value", {"series": f"{s:05d}"}) for s in range(series)]
    return [
        [Series(keys[s], ts[b : b + batch], values[b : b + batch, s].copy()) for s in range(series)]
        for b in range(0, ticks, batch)
    ]


def our_ingest(path: Path, batches: list[list[Series]]) -> float:
    backend = SQLBackend.from_url(f"sqlite:///{path}")
    start = time.perf_counter()
    for batch in batches:
        backend.write(batch)
    backend.flush()
    elapsed = time.perf_counter() - start
    backend.close()
    return elapsed


def median_ms(reads: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_read(tmp: Path, samples: int, others: int, reads: int) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    ts = T0 + np.arange(samples, dtype=np.int64) * SECOND
    values = rng.normal(size=samples)
    values[::97] = np.nan
    key = SeriesKey.of("bench.sqlite.read", {"host": "a"})
    other = [SeriesKey.of("bench.sqlite.other", {"i": str(i)}) for i in range(others)]

    con = anchor_connect(tmp / "read-anchor.db", None)
    for sid in range(others + 1):
        con.executemany(
            "INSERT INTO samples VALUES (?, ?, ?)",
            zip([sid] * samples, ts.tolist(), values.tolist(), strict=True),
        )
    con.commit()
    query = "SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts"

    def anchor() -> np.ndarray:
        rows = con.execute(query, (others // 2, MIN_NS, MAX_NS)).fetchall()
        return np.array(rows)

    backend = SQLBackend.from_url(f"sqlite:///{tmp / 'read-ours.db'}")
    keys = [*other[: others // 2], key, *other[others // 2 :]]
    backend.write([Series(k, ts, values) for k in keys])

    def ours() -> Series:
        return backend.read(key, MIN_NS, MAX_NS)

    got = ours()
    assert np.array_equal(got.values, values, equal_nan=True) and np.array_equal(got.timestamps, ts)
    assert len(anchor()) == samples
    anchor_ms = ours_ms = float("inf")
    for _ in range(3):  # interleave, so background load hits both alike
        anchor_ms = min(anchor_ms, median_ms(reads, anchor))
        ours_ms = min(ours_ms, median_ms(reads, ours))
    backend.close()
    con.close()
    return anchor_ms, ours_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10, help="ticks per write batch")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        args.series, args.ticks, args.batch, args.runs = 50, 40, 10, 1
    read_samples, read_others, reads = (500, 5, 5) if args.smoke else (10_000, 20, 30)

    ts, values = make_data(args.series, args.ticks)
    rows = args.series * args.ticks
    batches = our_batches(ts, values, args.batch)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        def fresh(name: str, run: int) -> Path:
            return tmp / f"{name}-{run}.db"

        results: dict[str, float] = {}
        for run in range(args.runs):  # interleave the contenders, keep each one's best
            timings = {
                "anchor": anchor_ingest(fresh("a", run), ts, values, args.batch, None),
                "anchor_normal": anchor_ingest(fresh("n", run), ts, values, args.batch, "NORMAL"),
                "metricskit": our_ingest(fresh("m", run), batches),
            }
            for name, seconds in timings.items():
                results[name] = min(results.get(name, float("inf")), seconds)
        anchor_rps = rows / results["anchor"]
        normal_rps = rows / results["anchor_normal"]
        ours_rps = rows / results["metricskit"]
        print(
            f"ingest: {args.series} series x {args.ticks} ticks = {rows:,} rows, "
            f"batches of {args.batch} ticks ({args.series * args.batch:,} rows), "
            f"best of {args.runs}"
        )
        print(f"  anchor sqlite3.executemany (WAL, default sync): {anchor_rps:>12,.0f} rows/s")
        print(f"  anchor with synchronous=NORMAL:                 {normal_rps:>12,.0f} rows/s")
        print(f"  metricskit SQLBackend.write:                    {ours_rps:>12,.0f} rows/s")
        print(f"  ingest ratio (metricskit / anchor): {ours_rps / anchor_rps:.2f}x  (goal >= 2x)")
        print(f"  ingest ratio vs the synchronous=NORMAL anchor: {ours_rps / normal_rps:.2f}x")

        anchor_ms, ours_ms = bench_read(tmp, read_samples, read_others, reads)
        print(f"read: one {read_samples:,}-sample series into numpy, median of {reads}, best of 3")
        print(f"  anchor sqlite3 SELECT + np.array: {anchor_ms:8.2f} ms")
        print(f"  metricskit SQLBackend.read:       {ours_ms:8.2f} ms")
        print(f"  read ratio (metricskit / anchor): {ours_ms / anchor_ms:.2f}x  (goal <= 1.0x)")


if __name__ == "__main__":
    main()
