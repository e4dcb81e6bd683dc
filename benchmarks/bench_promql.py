"""Two PromQL queries on the reference dataset: metricskit vs Prometheus and VictoriaMetrics.

    sum by (x) (rate(bench_counter_total[5m]))                 500 series, step 60 s
    quantile_over_time(0.95, bench_gauge{series="g0001"}[1m])  1 series, step 60 s

over the dataset's full range. In the same run, on the same samples: metricskit from a
memory store (in process), and Prometheus and VictoriaMetrics started here on 127.0.0.1
(``anchors.py``: Prometheus opens promtool's blocks, VictoriaMetrics gets
``/api/v1/import``) answering ``/api/v1/query_range`` (uncached), timed from this process
and so including HTTP and JSON. Prints the median and best of ``--repeat`` runs after a
warm-up and the ratios anchor / metricskit (above 1: metricskit is faster).

    python benchmarks/bench_promql.py           # 1,000 series x 10,000 points
    python benchmarks/bench_promql.py --smoke   # 20 series x 500 points
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchors import (
    ANCHOR_MISSING,
    ServerNotAvailable,
    prometheus_holding,
    query_range,
    timed_queries,
    victoriametrics_holding,
)
from dataset import STEP_S, T0, arrays
from metricskit.model import Series
from metricskit.store import open_store

QUERIES = {
    "rate": "sum by (x) (rate(bench_counter_total[5m]))",
    "quantile": 'quantile_over_time(0.95, bench_gauge{series="g0001"}[1m])',
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cache-dir", default=None, help="cache the generated dataset as .npy")
    args = ap.parse_args()
    n_series, n_points = (20, 500) if args.smoke else (1000, 10_000)
    repeat = 3 if args.smoke else args.repeat
    data = arrays(n_series, n_points, cache_dir=args.cache_dir)
    store = open_store("memory://")
    batch: list[Series] = data.batch()  # type: ignore[assignment]
    store.write(batch)
    start, end = T0, T0 + (n_points - 1) * STEP_S
    step = 60
    ours: dict[str, Callable[[], Any]] = {
        "rate": lambda: store.rate("bench_counter_total", "5m", f"{step}s", start, end, by=["x"]),
        "quantile": lambda: store.over_time(
            "bench_gauge", "p95", "1m", f"{step}s", start, end, tags={"series": "g0001"}
        ),
    }
    print(f"{data.n_samples:,} samples; median (best) of {repeat} runs after a warm-up")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        try:
            anchors = {
                "Prometheus": servers.enter_context(
                    prometheus_holding(data, Path(tmp) / "prometheus")
                ),
                "VictoriaMetrics": servers.enter_context(
                    victoriametrics_holding(data, Path(tmp) / "victoriametrics")
                ),
            }
        except ServerNotAvailable as exc:
            print(f"{ANCHOR_MISSING} {exc}")
            return 0
        for key, promql in QUERIES.items():
            median, best, frame = timed_queries(ours[key], repeat)
            print(
                f"\n{promql}\n  {'metricskit (memory store)':28s} {median:9.2f} ms "
                f"({best:.2f} best), {len(frame)} rows"
            )
            for system, server in anchors.items():
                a_median, a_best, result = timed_queries(
                    lambda s=server, q=promql: query_range(s, q, start, end, step), repeat
                )
                points = sum(len(r["values"]) for r in result)
                print(
                    f"  {system + ' (HTTP)':28s} {a_median:9.2f} ms ({a_best:.2f} best), "
                    f"{points} points; ratio {a_median / median:6.2f}x median, "
                    f"{a_best / best:6.2f}x best ({system} / metricskit)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
