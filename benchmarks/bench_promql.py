"""Two PromQL queries on the reference dataset, from a memory store, vs Prometheus/VM figures.

    sum by (x) (rate(bench_counter_total[5m]))                 500 series, step 60 s
    quantile_over_time(0.95, bench_gauge{series="g0001"}[1m])  1 series, step 60 s

over the dataset's full range. The Prometheus 2.42 and VictoriaMetrics 1.79 times are
constants measured in another run on this kind of machine (shared/bench/README.md), not
measured here: the ratio compares against those figures. ``--smoke`` uses 20 series x 500
points.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import STEP_S, T0, arrays
from metricskit.model import Series
from metricskit.store import open_store

REFERENCE_MS = {  # median of 5, full range, step 60 s (shared/bench/README.md)
    "rate": {"Prometheus 2.42": 671.0, "VictoriaMetrics 1.79": 119.0},
    "quantile": {"Prometheus 2.42": 4.5, "VictoriaMetrics 1.79": 2.6},
}


def timed(fn, repeat):  # type: ignore[no-untyped-def]
    """Median and best wall ms, best CPU ms (process_time: the machine is shared), result."""
    times, cpu, out = [], [], None
    fn()  # warm-up: first-call imports and allocations are not the query's cost
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    times.sort()
    return times[len(times) // 2], min(times), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cache-dir", default=None, help="cache the generated dataset as .npy")
    args = ap.parse_args()
    n_series, n_points = (20, 500) if args.smoke else (1000, 10_000)
    data = arrays(n_series, n_points, cache_dir=args.cache_dir)
    store = open_store("memory://")
    batch: list[Series] = data.batch()  # type: ignore[assignment]
    store.write(batch)
    start, end = T0, T0 + (n_points - 1) * STEP_S
    print(f"{data.n_samples:,} samples in a memory store; median (best) of {args.repeat} runs;")
    print("Prometheus/VictoriaMetrics figures are constants from another run, not measured here")
    queries = [
        (
            "rate",
            "sum by (x) (rate(bench_counter_total[5m]))",
            lambda: store.rate("bench_counter_total", "5m", "60s", start, end, by=["x"]),
        ),
        (
            "quantile",
            'quantile_over_time(0.95, bench_gauge{series="g0001"}[1m])',
            lambda: store.over_time(
                "bench_gauge", "p95", "1m", "60s", start, end, tags={"series": "g0001"}
            ),
        ),
    ]
    for key, promql, fn in queries:
        median, low, cpu, frame = timed(fn, args.repeat)
        print(
            f"\n{promql}\n  metricskit (memory store): {median:8.2f} ms ({low:.2f} best, "
            f"{cpu:.2f} CPU best), {len(frame)} rows"
        )
        for system, ref in REFERENCE_MS[key].items():
            print(
                f"  {system:22s} {ref:8.2f} ms   ratio {ref / median:5.2f}x median, "
                f"{ref / low:5.2f}x best (reference / ours)"
            )


if __name__ == "__main__":
    main()
