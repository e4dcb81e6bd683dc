"""Evaluating alert rules: metricskit's RuleEngine against the same checks in plain pandas.

Default size: 100 metrics x 100 hosts = 10,000 series, one sample every 15 s for 10
minutes, in a memory store; 1,000 rules, ten per metric: five on the last value
(lookback 5m) and five on the p95 over 5m, thresholds spread so a few percent of the
series alert. The seed promises < 5 ms per rule; the goal is < 0.5 ms per rule.

The anchor computes the same conditions with pandas from a long DataFrame of the same
samples (groupby last / groupby quantile over the window, merged with the rule table);
the two sets of true (rule, series) pairs are checked to be identical. Timings are the
best and median of several runs in this one process, the two taking turns, in wall and
CPU time (the machine is shared).

    python benchmarks/bench_rules.py [--smoke] [--metrics M] [--hosts H] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.rules_model import AlertRule
from metricskit.testing import ManualClock

NS = 1_000_000_000
T_END = 1_700_000_600
STEP_S = 15
SPAN_S = 600
RULES_PER_METRIC = 10


class Timings:
    """Wall and CPU (``process_time``: the machine is shared) times of one contender, ms."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.result: Any = None

    def run(self, fn: Callable[[], Any]) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        self.result = fn()
        self.wall.append((time.perf_counter() - t0) * 1e3)
        self.cpu.append((time.process_time() - c0) * 1e3)

    def line(self) -> str:
        return (
            f"wall {min(self.wall):8.1f} ms best, {statistics.median(self.wall):8.1f} median; "
            f"CPU {min(self.cpu):8.1f} ms best, {statistics.median(self.cpu):8.1f} median"
        )


def take_turns(contenders: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Timings]:
    """Run the contenders in turn ``repeat`` times, so load on the machine hits both alike."""
    out = {name: Timings() for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            out[name].run(fn)
    return out


def make_data(metrics: int, hosts: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = SPAN_S // STEP_S
    ts = (T_END - SPAN_S + STEP_S + np.arange(n) * STEP_S) * NS
    rows = metrics * hosts
    base = rng.uniform(10, 90, rows)[:, None]
    values = base + rng.normal(0, 5, (rows, n))
    return pd.DataFrame(
        {
            "metric": np.repeat([f"bench.m{m}.value" for m in range(metrics)], hosts * n),
            "host": np.tile(np.repeat([f"h{h}" for h in range(hosts)], n), metrics),
            "ts": np.tile(ts, rows),
            "value": values.ravel(),
        }
    )


def make_rules(metrics: int) -> pd.DataFrame:
    rows = []
    for m in range(metrics):
        for r in range(RULES_PER_METRIC):
            stat = "last" if r < RULES_PER_METRIC // 2 else "p95"
            rows.append(
                {
                    "rule": f"bench.r{m}_{r}",
                    "metric": f"bench.m{m}.value",
                    "stat": stat,
                    "threshold": 85.0 + 2 * (r % 5),
                }
            )
    return pd.DataFrame(rows)


def pandas_checks(df: pd.DataFrame, rules: pd.DataFrame, t_ns: int) -> set[tuple[str, str]]:
    recent = df[(df["ts"] > t_ns - 300 * NS) & (df["ts"] <= t_ns)]
    grouped = recent.groupby(["metric", "host"], sort=False)["value"]
    per_series = pd.DataFrame({"last": grouped.last(), "p95": grouped.quantile(0.95)})
    per_series = per_series.reset_index()
    merged = rules.merge(per_series, on="metric")
    value = np.where(merged["stat"] == "last", merged["last"], merged["p95"])
    hit = merged[value > merged["threshold"]]
    return set(zip(hit["rule"], hit["host"], strict=True))


def build_engine(df: pd.DataFrame, rules: pd.DataFrame) -> RuleEngine:
    store = open_store("memory://")
    batch = []
    for (metric, host), g in df.groupby(["metric", "host"], sort=False):
        key = SeriesKey.of(str(metric), {"host": str(host)})
        batch.append(Series(key, g["ts"].to_numpy(), g["value"].to_numpy()))
    store.write(batch)
    alert_rules = []
    for r in rules.itertuples():
        extra = {"stat": "p95", "window": "5m"} if r.stat == "p95" else {}
        alert_rules.append(
            AlertRule.create(
                str(r.rule),
                metric=str(r.metric),
                threshold=float(r.threshold),
                operator="gt",
                duration_seconds=60,
                **extra,
            )
        )
    return RuleEngine(alert_rules, store, clock=ManualClock(T_END))


def engine_hits(engine: RuleEngine) -> set[tuple[str, str]]:
    return {
        (a.rule, a.tags["host"])
        for a in engine.active_alerts()
        if a.state in (AlertState.PENDING, AlertState.FIRING)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny size, a few seconds")
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.smoke:
        args.metrics, args.hosts, args.repeat = 10, 10, 3
    df = make_data(args.metrics, args.hosts)
    rules = make_rules(args.metrics)
    n_rules = len(rules)
    t_ns = T_END * NS
    engine = build_engine(df, rules)
    print(
        f"{n_rules} rules over {args.metrics * args.hosts} series, "
        f"{len(df):,} samples; best / median of {args.repeat} runs"
    )
    first = Timings()
    first.run(engine.evaluate)
    first_events = first.result
    runs = take_turns(
        {"pandas": lambda: pandas_checks(df, rules, t_ns), "engine": engine.evaluate},
        args.repeat,
    )
    got, expected = engine_hits(engine), runs["pandas"].result
    if got != expected:
        raise SystemExit(f"results differ: {len(got ^ expected)} (rule, series) pairs disagree")
    pandas, steady = runs["pandas"], runs["engine"]
    print(
        f"  alerting (rule, series) pairs: {len(got)}; the first evaluation made "
        f"{len(first_events)} changes (state writes included): wall {first.wall[0]:.1f} ms, "
        f"CPU {first.cpu[0]:.1f} ms"
    )
    print(f"  pandas anchor        {pandas.line()}")
    print(f"  metricskit evaluate  {steady.line()}")
    print(
        f"  per rule (best wall): {min(steady.wall) / n_rules * 1e3:.1f} us "
        "(seed: < 5000 us, goal: < 500 us)"
    )
    print(
        f"  ratio metricskit / pandas: wall {min(steady.wall) / min(pandas.wall):.2f} best, "
        f"{statistics.median(steady.wall) / statistics.median(pandas.wall):.2f} median; "
        f"CPU {min(steady.cpu) / min(pandas.cpu):.2f} best"
    )


if __name__ == "__main__":
    main()
