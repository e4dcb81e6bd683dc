"""On-disk bytes per sample of the reference dataset in each of metricskit's disk stores.

The reference dataset (``dataset.py``: 1,000 series x 10,000 points, half 2-decimal gauges,
half integer counters) written through ``Store.write`` into ``sqlite://`` and
``parquet://`` (then flushed and, for Parquet, compacted), measured as the bytes of every
file in the store's directory. The anchors are the figures measured for the same data in
Prometheus' TSDB (4.81 bytes/sample after compaction; ``bench_remote.py`` measured 4.89
through promtool backfill here) and VictoriaMetrics (1.29 after force_merge; 1.42 through
remote write here): constants from those runs, not re-measured in this process, which
the output says.

    python benchmarks/bench_disk.py           # 10,000,000 samples (SQLite takes minutes)
    python benchmarks/bench_disk.py --smoke   # 20 x 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dataset
import metricskit as mk

PROMETHEUS_BYTES = 4.81
VICTORIAMETRICS_BYTES = 1.29


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "parquet"], default=None)
    args = parser.parse_args()
    n_series, n_points = (20, 500) if args.smoke else (dataset.N_SERIES, dataset.N_POINTS)
    data = dataset.arrays(n_series, n_points, cache_dir=os.environ.get("METRICSKIT_BENCH_CACHE"))
    batch = data.batch()
    n = n_series * n_points
    print(f"reference dataset: {n:,} samples in {n_series:,} series")
    print(
        f"anchors (constants from earlier runs on this dataset, not this process): "
        f"Prometheus TSDB {PROMETHEUS_BYTES} bytes/sample, VictoriaMetrics "
        f"{VICTORIAMETRICS_BYTES}"
    )
    for kind in ("parquet", "sqlite"):
        if args.only and kind != args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            root.mkdir()
            url = f"sqlite:///{root / 'metrics.db'}" if kind == "sqlite" else f"parquet://{root}"
            store = mk.open_store(url)
            started = time.perf_counter()
            for lo in range(0, len(batch), 50):
                store.write(batch[lo : lo + 50])
            store.flush()
            if kind == "parquet":
                store.backend.compact()  # type: ignore[attr-defined]
            store.close()
            took = time.perf_counter() - started
            per_sample = dir_bytes(root) / n
            print(
                f"{kind:8s} {per_sample:6.3f} bytes/sample (written in {took:.1f} s); "
                f"ratio to Prometheus {per_sample / PROMETHEUS_BYTES:.2f}x, "
                f"to VictoriaMetrics {per_sample / VICTORIAMETRICS_BYTES:.2f}x"
            )


if __name__ == "__main__":
    main()
