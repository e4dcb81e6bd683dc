"""Random differential test: the rule engine's alert timelines against ``promtool test rules``.

Every run draws new rules and input series (seeded: ``METRICSKIT_DIFF_SEED`` repeats a
run; the seed is printed): last-value rules with every operator, stat rules (avg, min,
max, sum, count, stddev, pNN, rate, increase) over windows, ``for`` and
``keep_firing_for``, gaps, NaN samples (last-value rules), +Inf samples and counters with
resets. Each rule has its own metric; all of them go into one rule group and one
``promtool test rules`` run. metricskit's ``RuleEngine`` evaluates all rules on one store
every minute; the alerts it finds firing become ``alert_rule_test`` expectations and the
pending ones ``ALERTS{alertstate="pending"}`` samples, and promtool (Debian's 2.42) must
agree at every evaluation.

The rules use ``no_data: ok``, Prometheus' own behaviour (no sample: the condition is
false; a NaN sample is compared, so only ``!=`` holds). Deliberate differences, avoided by
construction as in tests/interop/test_prometheus_differential.py:

- window edges (Prometheus 2 ``[t - w, t]``, metricskit ``(t - w, t]``): samples every
  30 s, evaluations every minute, windows not a multiple of 30 s; and no series' newest
  sample is ever exactly 5 minutes (the lookback) old at an evaluation.
- NaN samples in stat windows (metricskit drops them): NaN only in last-value rules.
- Prometheus 2's zero-point clamp order in ``rate``/``increase``: scenarios where it
  changes a result at some evaluation are drawn again.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.rules_model import OPERATOR_SYMBOLS, AlertRule
from tests.interop.prom import differential_seed, promtool_values
from tests.services import binary

pytestmark = pytest.mark.services

NS = 10**9
STEP_S = 30  # input sample interval
EVALS = 20  # evaluations at 0, 1m, ..., 19m
SAMPLES = EVALS * 2
LOOKBACK_S = 300
N_RULES = 150
WINDOWS_S = (75, 105, 135, 195, 285)
# gauges' statistics first (a sibling rule picks among them), then the counters'
STATS = ("avg", "min", "max", "sum", "count", "stddev", "p50", "p95", "rate", "increase")
HOSTS = ("a", "b", "c")


@dataclass
class Scenario:
    """One rule (metricskit fields and its PromQL twin) and its input series."""

    index: int
    metric_index: int
    fields: dict[str, Any]
    expr: str
    for_s: int
    keep_s: int
    series: dict[str, list[float | None]]  # host -> value per 30 s, None: no sample

    @property
    def metric(self) -> str:
        return f"diff_m{self.metric_index}"

    @property
    def alertname(self) -> str:
        return f"R{self.index}"


def _promql(metric: str, stat: str, window_s: int) -> str:
    sel = f"{metric}[{window_s}s]"
    if stat in ("rate", "increase"):
        return f"{stat}({sel})"
    if stat.startswith("p"):
        return f"quantile_over_time({float(stat[1:]) / 100}, {sel})"
    return f"{stat}_over_time({sel})"


def _gauge(rng: np.random.Generator, *, integers: bool) -> list[float | None]:
    base = float(rng.integers(0, 20)) if integers else float(rng.uniform(0, 100))
    walk = base + np.cumsum(rng.normal(0, 3 if integers else 8, SAMPLES))
    values = np.round(walk) if integers else np.round(walk, 2)
    return [float(v) for v in values]


def _counter(rng: np.random.Generator) -> list[float | None]:
    v = np.cumsum(np.round(rng.exponential(rng.uniform(1, 30), SAMPLES), 2))
    v += float(rng.integers(0, 5000))
    for at in rng.choice(SAMPLES, size=int(rng.integers(0, 3)), replace=False):
        v[at:] -= v[at] - float(rng.uniform(0, 10))
    return [float(x) for x in v]


def _punch(rng: np.random.Generator, values: list[float | None], *, nan: bool, inf: bool):
    """Gaps (runs of missing samples), and NaN / +Inf samples where asked."""
    out = list(values)
    for _ in range(int(rng.integers(0, 3))):
        start = int(rng.integers(0, SAMPLES))
        length = int(rng.choice([1, 2, 4, 12, 20]))
        out[start : start + length] = [None] * len(out[start : start + length])
    for i in range(SAMPLES):
        if out[i] is None:
            continue
        if nan and rng.random() < 0.1:
            out[i] = math.nan
        elif inf and rng.random() < 0.03:
            out[i] = math.inf
    return out


def _off_the_lookback_edge(values: list[float | None]) -> list[float | None]:
    """No evaluation may see its newest sample exactly LOOKBACK_S old (Prometheus 2 keeps it)."""
    out = list(values)
    changed = True
    while changed:
        changed = False
        for e in range(EVALS):
            t = e * 60
            newest = max(
                (i for i in range(SAMPLES) if out[i] is not None and i * STEP_S <= t), default=None
            )
            if newest is not None and newest * STEP_S == t - LOOKBACK_S:
                out[newest] = None
                changed = True
    return out


def _zero_point_differs(values: list[float | None], window_s: int) -> bool:
    """Would Prometheus 2's clamp order change rate/increase at some evaluation?"""
    ts = np.array([i * STEP_S for i, v in enumerate(values) if v is not None], dtype=float)
    vs = np.array([v for v in values if v is not None], dtype=float)
    for e in range(EVALS):
        t = e * 60
        inside = (ts > t - window_s) & (ts <= t)
        x, v = ts[inside], vs[inside]
        if v.size < 2:
            continue
        with np.errstate(invalid="ignore"):
            result = v[-1] - v[0] + float(np.sum(v[:-1][v[1:] < v[:-1]]))
        if not (result > 0 and v[0] >= 0):
            continue
        sampled = x[-1] - x[0]
        avg = sampled / (v.size - 1)
        to_zero = sampled * (v[0] / result)
        if x[0] - (t - window_s) >= avg * 1.1 and avg / 2 <= to_zero <= avg * 1.1:
            return True
    return False


def draw_scenario(rng: np.random.Generator, index: int) -> Scenario:
    """A new rule on new series: a last-value rule (40 %) or a stat rule."""
    for_s = int(rng.choice([0, 0, 60, 120, 180, 300]))
    keep_s = int(rng.choice([0, 0, 60, 120, 240]))
    hosts = HOSTS[: int(rng.integers(1, len(HOSTS) + 1))]
    metric = f"diff_m{index}"
    if rng.random() < 0.4:  # a last-value rule
        op = str(rng.choice(list(OPERATOR_SYMBOLS)))
        integers = op in ("eq", "ne")
        series = {
            h: _off_the_lookback_edge(
                _punch(rng, _gauge(rng, integers=integers), nan=rng.random() < 0.5, inf=False)
            )
            for h in hosts
        }
        present = [v for vals in series.values() for v in vals if v is not None and v == v]
        pick = float(rng.choice(present)) if present else 0.0
        threshold = pick if integers else round(pick + 0.37, 2)
        fields = {"operator": op, "threshold": threshold, "no_data": "ok"}
        expr = f"{metric} {OPERATOR_SYMBOLS[op]} {threshold!r}"
        return Scenario(index, index, fields, expr, for_s, keep_s, series)
    stat = str(rng.choice(STATS))
    window_s = int(rng.choice(WINDOWS_S))
    op = str(rng.choice(["gt", "gte", "lt", "lte"]))
    for _ in range(50):
        make = _counter if stat in ("rate", "increase") else (lambda r: _gauge(r, integers=False))
        series = {h: _punch(rng, make(rng), nan=False, inf=rng.random() < 0.2) for h in hosts}
        if stat not in ("rate", "increase") or not any(
            _zero_point_differs(v, window_s) for v in series.values()
        ):
            break
    else:
        raise AssertionError("no counter without the Prometheus 2/3 zero-point difference")
    engine_values = _stat_values(stat, window_s, series)
    finite = [v for v in engine_values if math.isfinite(v)]
    threshold = round(float(rng.choice(finite)) + 0.0137, 4) if finite else 1.0137
    fields = {
        "operator": op,
        "threshold": threshold,
        "stat": stat,
        "window": f"{window_s}s",
        "no_data": "ok",
    }
    expr = f"{_promql(metric, stat, window_s)} {OPERATOR_SYMBOLS[op]} {threshold!r}"
    return Scenario(index, index, fields, expr, for_s, keep_s, series)


def draw_sibling(rng: np.random.Generator, index: int, of: Scenario) -> Scenario:
    """Another stat rule on ``of``'s metric and series: the engine reads the metric once,
    over the longer span, so a window may hold no sample of a series that was read."""
    stat = str(rng.choice(STATS[:-2]))  # not rate/increase: the series may be gauges
    window_s = int(rng.choice(WINDOWS_S[:2]))
    op = str(rng.choice(["gt", "gte", "lt", "lte"]))
    finite = [v for v in _stat_values(stat, window_s, of.series) if math.isfinite(v)]
    threshold = round(float(rng.choice(finite)) + 0.0137, 4) if finite else 3.0137
    fields = {"operator": op, "threshold": threshold, "stat": stat, "window": f"{window_s}s"}
    fields["no_data"] = "ok"
    expr = f"{_promql(of.metric, stat, window_s)} {OPERATOR_SYMBOLS[op]} {threshold!r}"
    for_s = int(rng.choice([0, 60, 120]))
    return Scenario(index, of.metric_index, fields, expr, for_s, 0, of.series)


def draw_scenarios(rng: np.random.Generator) -> list[Scenario]:
    out: list[Scenario] = []
    for i in range(N_RULES):
        elder = out[-1] if out else None
        # only after a stat rule: its series hold no NaN (the NaN policy differs in windows)
        if elder and elder.metric_index == i - 1 and "stat" in elder.fields and rng.random() < 0.3:
            out.append(draw_sibling(rng, i, elder))
        else:
            out.append(draw_scenario(rng, i))
    return out


def _stat_values(stat: str, window_s: int, series: dict[str, list[float | None]]) -> list[float]:
    """The statistic's values along the timeline, to put thresholds where things happen."""
    from metricskit.query.range_functions import eval_times, over_time, range_function

    times = eval_times(0, (EVALS - 1) * 60 * NS, 60 * NS)
    out: list[float] = []
    for values in series.values():
        ts = np.array(
            [i * STEP_S * NS for i, v in enumerate(values) if v is not None], dtype=np.int64
        )
        vs = np.array([v for v in values if v is not None], dtype=float)
        if stat in ("rate", "increase"):
            got = range_function(stat, ts, vs, window_s * NS, times)
        elif stat.startswith("p"):
            got = over_time("quantile", ts, vs, window_s * NS, times, q=float(stat[1:]) / 100)
        else:
            got = over_time(stat, ts, vs, window_s * NS, times)
        out += [float(v) for v in got]
    return out


Timeline = list[tuple[int, set[tuple[str, str]], set[tuple[str, str]]]]


def run_metricskit(scenarios: list[Scenario]) -> Timeline:
    """All rules in one engine on one store: (t, firing, pending) as (alertname, host)."""
    store = open_store("memory://")
    batch = []
    for sc in scenarios:
        if sc.metric_index != sc.index:
            continue  # a sibling: its series are its elder's
        for host, values in sc.series.items():
            idx = [i for i, v in enumerate(values) if v is not None]
            ts = np.array([i * STEP_S * NS for i in idx], dtype=np.int64)
            vs = np.array([values[i] for i in idx], dtype=np.float64)
            batch.append(Series(SeriesKey.of(sc.metric, {"host": host}), ts, vs))
    store.write(batch)
    rules = [
        AlertRule.create(
            sc.alertname,
            metric=sc.metric,
            severity="warning",
            duration_seconds=sc.for_s,
            keep_firing_seconds=sc.keep_s,
            **sc.fields,
        )
        for sc in scenarios
    ]
    engine = RuleEngine(rules, store)
    timeline: Timeline = []
    for e in range(EVALS):
        engine.evaluate(now=e * 60)
        alerts = engine.active_alerts()
        firing = {(a.rule, a.tags["host"]) for a in alerts if a.state is AlertState.FIRING}
        pending = {(a.rule, a.tags["host"]) for a in alerts if a.state is AlertState.PENDING}
        timeline.append((e * 60, firing, pending))
    return timeline


def promtool_files(scenarios: list[Scenario], timeline: Timeline, tmp: Path) -> Path:
    rules = []
    for sc in scenarios:
        rule: dict[str, Any] = {
            "alert": sc.alertname,
            "expr": sc.expr,
            "for": f"{sc.for_s}s",
            "labels": {"severity": "warning"},
        }
        if sc.keep_s:
            rule["keep_firing_for"] = f"{sc.keep_s}s"
        rules.append(rule)
    (tmp / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "diff", "rules": rules}]}))
    alert_tests = []
    promql_tests = []
    for t, firing, pending in timeline:
        for sc in scenarios:
            hosts = sorted(h for name, h in firing if name == sc.alertname)
            alert_tests.append(
                {
                    "eval_time": f"{t}s",
                    "alertname": sc.alertname,
                    "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "host": h}} for h in hosts
                    ],
                }
            )
        promql_tests.append(
            {
                "expr": 'ALERTS{alertstate="pending"}',
                "eval_time": f"{t}s",
                "exp_samples": [
                    {
                        "labels": f'ALERTS{{alertname="{name}",alertstate="pending",'
                        f'host="{h}",severity="warning"}}',
                        "value": 1,
                    }
                    for name, h in sorted(pending)
                ],
            }
        )
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": f"{STEP_S}s",
                "input_series": [
                    {"series": f'{sc.metric}{{host="{h}"}}', "values": promtool_values(v)}
                    for sc in scenarios
                    if sc.metric_index == sc.index
                    for h, v in sc.series.items()
                ],
                "alert_rule_test": alert_tests,
                "promql_expr_test": promql_tests,
            }
        ],
    }
    path = tmp / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


def test_alert_timelines_agree_with_promtool(tmp_path: Path) -> None:
    promtool = binary("promtool")
    seed = differential_seed()
    rng = np.random.default_rng(seed)
    scenarios = draw_scenarios(rng)
    timeline = run_metricskit(scenarios)
    fired = {name for _, firing, _ in timeline for name, _ in firing}
    pended = {name for _, _, pending in timeline for name, _ in pending}
    print(
        f"seed {seed}: {len(scenarios)} rules x {EVALS} evaluations; "
        f"{len(fired)} rules fire, {len(pended)} are pending at some point"
    )
    # agreeing would prove little if nothing happened
    assert len(fired) >= N_RULES // 4 and len(pended) >= N_RULES // 8
    test_file = promtool_files(scenarios, timeline, tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        named = re.findall(r"alertname: R(\d+), time", result.stdout + result.stderr)
        detail = "\n".join(
            f"R{i}: {scenarios[i].expr} for {scenarios[i].for_s}s keep {scenarios[i].keep_s}s "
            f"{scenarios[i].series}"
            for i in sorted({int(n) for n in named})[:10]
        )
        pytest.fail(
            f"seed {seed}: promtool disagrees with metricskit:\n{result.stdout[-6000:]}\n"
            f"{result.stderr[-3000:]}\n{detail}"
        )
