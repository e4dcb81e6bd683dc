"""The issue-13 load: 1,000 series x 10,000 samples through a default Recorder, per backend.

    store = mk.open_store(url)            # memory://, sqlite:///..., parquet:///...
    rec = mk.Recorder(store)              # default settings
    for s in range(1000):
        rec.record_many("g", values=vals[s], timestamps=ts, tags={"id": str(s)})
    rec.close()

Before back-pressure a writer that fell behind made the Recorder drop 8-9 million of the
10 million samples. The benchmark prints, per backend, ``dropped`` (must be 0), the
samples the store holds afterwards, and wall-clock throughput; the anchor is the same
arrays written straight to a fresh store of the same backend with ``Store.write`` (1,000
series per call), so the ratio is what the Recorder's buffering and back-pressure cost
over the backend's own write speed.

    python benchmarks/bench_recorder_load.py            # 10,000,000 samples per backend
    python benchmarks/bench_recorder_load.py --smoke    # 20 x 1,000, for CI
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import metricskit as mk
from metricskit.model import Series, SeriesKey

T0 = 1_732_752_000
URLS = ("memory://", "sqlite:///{tmp}/{run}.db", "parquet:///{tmp}/{run}")


def via_recorder(url: str, series: int, per_series: int) -> tuple[float, int, int]:
    """Seconds for the loop plus close(), samples dropped, samples stored."""
    store = mk.open_store(url)
    ts = T0 + np.arange(per_series, dtype=np.float64)
    vals = np.random.default_rng(0).random((series, per_series))
    start = time.perf_counter()
    rec = mk.Recorder(store)
    for s in range(series):
        rec.record_many("g", values=vals[s], timestamps=ts, tags={"id": str(s)})
    rec.close()
    elapsed = time.perf_counter() - start
    stored = store.stats()["samples"]
    store.close()
    return elapsed, rec.dropped, stored


def direct(url: str, series: int, per_series: int) -> float:
    """Seconds to write the same samples straight to the store (the anchor)."""
    store = mk.open_store(url)
    ts = (T0 + np.arange(per_series, dtype=np.int64)) * 10**9
    vals = np.random.default_rng(0).random((series, per_series))
    start = time.perf_counter()
    step = max(1, 1_000_000 // per_series)  # about a default max_buffer per write
    for first in range(0, series, step):
        store.write(
            [
                Series(SeriesKey.of("g", {"id": str(s)}), ts, vals[s])
                for s in range(first, min(series, first + step))
            ]
        )
    store.flush()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20 series x 1,000, for CI")
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--per-series", type=int, default=10_000)
    parser.add_argument("--backends", default="memory,sqlite,parquet")
    args = parser.parse_args()
    series, per_series = (20, 1_000) if args.smoke else (args.series, args.per_series)
    total = series * per_series
    wanted = args.backends.split(",")
    print(f"{series} series x {per_series:,} samples = {total:,} samples per backend")
    failed = False
    for url in URLS:
        scheme = url.split(":", 1)[0]
        if scheme not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            rec_s, dropped, stored = via_recorder(
                url.format(tmp=tmp, run="rec"), series, per_series
            )
            anchor_s = direct(url.format(tmp=tmp, run="direct"), series, per_series)
        ok = dropped == 0 and stored == total
        failed |= not ok
        print(
            f"{scheme:8s} dropped={dropped:,} stored={stored:,} "
            f"recorder {total / rec_s / 1e6:6.2f}M samples/s ({rec_s:6.1f}s)  "
            f"Store.write {total / anchor_s / 1e6:6.2f}M samples/s ({anchor_s:6.1f}s)  "
            f"ratio recorder/direct time {rec_s / anchor_s:5.2f}x  {'OK' if ok else 'LOSS'}",
            flush=True,
        )
    if failed:
        raise SystemExit("samples were lost")


if __name__ == "__main__":
    main()
