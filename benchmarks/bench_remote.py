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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metricskit_promremote import VictoriaMetricsBackend
from metricskit_promremote.servers import (
    Server,
    ServerNotAvailable,
    start_victoriametrics,
)

from dataset import Dataset, arrays

SAMPLES_PER_REQUEST = 100_000


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ingest_metricskit(server: Server, data: Dataset) -> None:
    backend = VictoriaMetricsBackend(server.url, max_samples_per_request=SAMPLES_PER_REQUEST)
    backend.write(data.batch())  # type: ignore[arg-type]
    backend.flush()
    backend.close()


def ingest_import(server: Server, data: Dataset) -> None:
    ts_ms = (data.timestamps_ns // 1_000_000).tolist()
    per_request = max(1, SAMPLES_PER_REQUEST // len(ts_ms))
    session = requests.Session()
    for first in range(0, len(data.names), per_request):
        lines = []
        for i in range(first, min(first + per_request, len(data.names))):
            metric = {"__name__": data.names[i], **data.labels[i]}
            lines.append(
                json.dumps(
                    {"metric": metric, "values": data.values[i].tolist(), "timestamps": ts_ms}
                )
            )
        session.post(f"{server.http}/api/v1/import", data="\n".join(lines)).raise_for_status()
    session.get(f"{server.http}/internal/force_flush").raise_for_status()
    session.close()


def timed_round(
    ingest: Callable[[Server, Dataset], None], data: Dataset, workdir: Path
) -> tuple[float, int]:
    """Seconds to ingest into a fresh server, and its on-disk bytes after a force merge."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with start_victoriametrics(Path(tmp)) as server:
            start = time.perf_counter()
            ingest(server, data)
            elapsed = time.perf_counter() - start
            requests.get(f"{server.http}/internal/force_merge", timeout=600).raise_for_status()
            time.sleep(2)  # force_merge returns before the merged parts replace the old ones
        return elapsed, _du(Path(tmp) / "data")


def prometheus_bytes(data: Dataset, workdir: Path) -> int | None:
    """Bytes of the TSDB blocks ``promtool`` builds from the dataset as OpenMetrics."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(promtool, os.X_OK):
        return None
    src = workdir / "data.om"
    ts_s = [f"{t // 1_000_000_000}" for t in data.timestamps_ns.tolist()]
    with src.open("w") as out:
        # OpenMetrics wants each family's samples together: the dataset's order is.
        for i, name in enumerate(data.names):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(data.labels[i].items()))
            prefix = f"{name}{{{labels}}} "
            out.writelines(
                f"{prefix}{v!r} {t}\n" for v, t in zip(data.values[i].tolist(), ts_s, strict=True)
            )
        out.write("# EOF\n")
    blocks = workdir / "blocks"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(blocks)],
        check=True,
        capture_output=True,
    )
    return _du(blocks)


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
        print(f"skipped: {exc}")
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
