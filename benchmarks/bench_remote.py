"""Remote-write backend ingest into VictoriaMetrics vs VictoriaMetrics' own JSON import.

Both sides start from the same numpy dataset (``benchmarks/dataset.py``) and include
their own encoding in the time:

- metricskit: ``VictoriaMetricsBackend.write(batch)`` (protobuf + snappy remote write,
  100k samples per request) then ``flush()`` (``/internal/force_flush``);
- anchor: the same samples as ``/api/v1/import`` JSON lines built with ``json.dumps``,
  posted with ``requests`` in requests of the same size, then the same force flush.

Each round starts a fresh VictoriaMetrics per side (so nothing is a duplicate); the best
and median of the rounds are printed, with the ratio of the bests. Then the on-disk bytes
per sample: VictoriaMetrics' data directory after a force merge, and Prometheus' TSDB
blocks made by ``promtool tsdb create-blocks-from openmetrics`` from the same samples.

    python benchmarks/bench_remote.py            # 1,000 series x 10,000 points
    python benchmarks/bench_remote.py --smoke    # 20 series x 500 points, one round
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metricskit_promremote import VictoriaMetricsBackend
from metricskit_promremote.servers import (
    Server,
    ServerNotAvailable,
    start_victoriametrics,
)

from anchors import ANCHOR_MISSING, SAMPLES_PER_REQUEST, dir_bytes, promtool_blocks, vm_merge
from anchors import vm_import as ingest_import
from dataset import Dataset, arrays


def ingest_metricskit(server: Server, data: Dataset) -> None:
    backend = VictoriaMetricsBackend(server.url, max_samples_per_request=SAMPLES_PER_REQUEST)
    backend.write(data.batch())  # type: ignore[arg-type]
    backend.flush()
    backend.close()


def timed_round(
    ingest: Callable[[Server, Dataset], None], data: Dataset, workdir: Path
) -> tuple[float, int]:
    """Seconds to ingest into a fresh server, and its on-disk bytes after a force merge."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with start_victoriametrics(Path(tmp)) as server:
            start = time.perf_counter()
            ingest(server, data)
            elapsed = time.perf_counter() - start
            vm_merge(server)
        return elapsed, dir_bytes(Path(tmp) / "data")


def prometheus_bytes(data: Dataset, workdir: Path) -> int | None:
    """Bytes of the TSDB blocks ``promtool`` builds from the dataset as OpenMetrics."""
    try:
        return dir_bytes(promtool_blocks(data, workdir / "blocks"))
    except ServerNotAvailable:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--no-prometheus", action="store_true", help="skip promtool's on-disk measurement"
    )
    args = parser.parse_args()
    n_series, n_points = (20, 500) if args.smoke else (1000, 10_000)
    rounds = args.rounds or (1 if args.smoke else 3)
    cache = Path(tempfile.gettempdir()) / "metricskit-bench"
    data = arrays(n_series, n_points, cache_dir=None if args.smoke else cache)
    n = data.n_samples
    print(f"dataset: {n_series} series x {n_points} points = {n:,} samples; {rounds} round(s)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            results: dict[str, list[tuple[float, int]]] = {"metricskit": [], "import": []}
            for _ in range(rounds):
                results["metricskit"].append(timed_round(ingest_metricskit, data, workdir))
                results["import"].append(timed_round(ingest_import, data, workdir))
            best = {}
            for side, runs in results.items():
                times = [t for t, _ in runs]
                best[side] = min(times)
                print(
                    f"{side:>10}: best {n / min(times):>12,.0f} samples/s, "
                    f"median {n / statistics.median(times):>12,.0f} samples/s "
                    f"(best {min(times):.2f} s)"
                )
            print(f"ratio metricskit/import throughput: {best['import'] / best['metricskit']:.2f}")
            for side, runs in results.items():
                print(f"VictoriaMetrics on disk after {side}: {runs[-1][1] / n:.2f} bytes/sample")
            prom = None if args.no_prometheus else prometheus_bytes(data, workdir)
            if prom is None:
                print("Prometheus on disk: skipped (promtool missing or --no-prometheus)")
            else:
                print(f"Prometheus on disk (promtool blocks): {prom / n:.2f} bytes/sample")
    except ServerNotAvailable as exc:
        print(f"{ANCHOR_MISSING} {exc}")
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
