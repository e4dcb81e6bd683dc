"""On-disk bytes per sample of the reference dataset: metricskit's disk stores vs its anchors.

The reference dataset (``dataset.py``: 1,000 series x 10,000 points, half 2-decimal gauges,
half integer counters) written through ``Store.write`` into ``sqlite://`` and
``parquet://`` (then flushed and, for Parquet, compacted), measured as the bytes of every
file in the store's directory. The anchors hold the same samples in the same run
(``anchors.py``, servers started here on 127.0.0.1):

- Prometheus: the TSDB blocks ``promtool`` backfills, then the same directory after the
  Prometheus server opened it and its compaction merged the two-hour blocks (full size:
  waits up to ``--compaction-wait`` seconds for the block count to hold still);
- VictoriaMetrics: its data directory after ``/api/v1/import``, a force flush and a force
  merge.

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
from anchors import (
    ANCHOR_MISSING,
    ServerNotAvailable,
    dir_bytes,
    prometheus_holding,
    victoriametrics_holding,
    vm_merge,
)


def anchor_bytes(
    data: dataset.Dataset, workdir: Path, compaction_wait_s: float
) -> dict[str, float]:
    """Bytes per sample of the dataset in Prometheus and VictoriaMetrics, measured now."""
    n = data.n_samples
    found: dict[str, float] = {}
    prom = workdir / "prometheus"
    with prometheus_holding(data, prom, compaction_wait_s=compaction_wait_s):
        pass
    blocks = [meta.parent for meta in (prom / "data").glob("*/meta.json")]
    # the blocks only: the server's empty WAL and head are no part of the data's size
    found[f"Prometheus TSDB ({len(blocks)} blocks)"] = sum(map(dir_bytes, blocks)) / n
    with victoriametrics_holding(data, workdir / "victoriametrics") as vm:
        vm_merge(vm)
        found["VictoriaMetrics (merged)"] = dir_bytes(vm.data_dir / "data") / n
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "parquet"], default=None)
    parser.add_argument(
        "--compaction-wait", type=float, default=None, help="seconds (default 300; smoke 0)"
    )
    args = parser.parse_args()
    n_series, n_points = (20, 500) if args.smoke else (dataset.N_SERIES, dataset.N_POINTS)
    wait = args.compaction_wait if args.compaction_wait is not None else (0 if args.smoke else 300)
    data = dataset.arrays(n_series, n_points, cache_dir=os.environ.get("METRICSKIT_BENCH_CACHE"))
    batch = data.batch()
    n = n_series * n_points
    print(f"reference dataset: {n:,} samples in {n_series:,} series")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            anchors = anchor_bytes(data, Path(tmp), wait)
        except ServerNotAvailable as exc:
            print(f"{ANCHOR_MISSING} {exc}")
            return 0
    for name, per_sample in anchors.items():
        print(f"{name:34s} {per_sample:6.3f} bytes/sample (measured in this run)")
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
            ratios = ", ".join(
                f"{per_sample / b:.2f}x {name.split()[0]}" for name, b in anchors.items()
            )
            print(
                f"metricskit {kind:23s} {per_sample:6.3f} bytes/sample (written in {took:.1f} s); "
                f"ratio to {ratios}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
