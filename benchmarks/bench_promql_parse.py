"""Parse + plan overhead of a PromQL query, against the bare Rust parser in this process.

``metricskit.query.parse`` = ``promql_parser.parse`` (the anchor, timed alone too) plus
turning its tree into the checked plan. The expressions are the Grafana dashboard's
(``metricskit.report.grafana.panel_queries``) and a few alert-rule shapes. The issue's budget
is 1 ms per typical dashboard expression; the ratio line compares with the bare parser.
``--smoke`` runs fewer repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import promql_parser

from metricskit.query import parse
from metricskit.report.grafana import panel_queries

ALERT_SHAPES = [
    'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) '
    "/ sum by (job) (rate(http_requests_total[5m])) > 0.05",
    "avg_over_time(system_cpu_usage_percent[10m]) > 90",
    "predict_linear(system_disk_free_bytes[1h], 4 * 3600) < 0",
    'absent(up{job="api"})',
    "max_over_time(deriv(queue_depth[5m])[30m:1m] offset 5m)",
    "node_load1 / on (instance) group_left count by (instance) (node_cpu_seconds_total)",
]


def expressions() -> list[str]:
    names = ["system.cpu.usage_percent", "http.request.duration_seconds", "http.requests.total"]
    dashboard = [q for name in names for _, q, _ in panel_queries(name)]
    return dashboard + ALERT_SHAPES


def per_call_us(fn, exprs: list[str], repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median over ``repeat`` rounds of the mean µs per expression."""
    for e in exprs:
        fn(e)  # warm-up
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for e in exprs:
            fn(e)
        rounds.append((time.perf_counter() - t0) * 1e6 / len(exprs))
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    repeat = 20 if args.smoke else 300
    exprs = expressions()
    bare = per_call_us(promql_parser.parse, exprs, repeat)
    ours = per_call_us(parse, exprs, repeat)
    worst = max(per_call_us(parse, [e], repeat) for e in exprs)
    print(f"{len(exprs)} dashboard/alert expressions, median of {repeat} rounds")
    print(f"  promql_parser.parse (anchor)    {bare:8.1f} us per expression")
    print(f"  metricskit parse + plan         {ours:8.1f} us per expression")
    print(f"  slowest expression, parse+plan  {worst:8.1f} us (budget 1000 us)")
    print(f"ratio parse+plan / bare parser: {ours / bare:.2f}x; slowest / 1 ms budget: "
          f"{worst / 1000:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
