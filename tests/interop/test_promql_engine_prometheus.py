"""Random differential test: metricskit's PromQL engine against a real Prometheus.

Every run draws new data (seeded: ``METRICSKIT_DIFF_SEED`` repeats a run; the seed is
printed) — gauges (smooth, stepwise, with gaps longer than the 5 m lookback), counters
with resets, irregular scrapes, and a classic histogram's ``_bucket`` series — loads it
into Debian's Prometheus (2.42) and into a metricskit store, then draws several hundred
random expressions from a grammar covering every supported function, aggregation and
operator (selectors with every matcher, offset, ``@``, subqueries, vector matching with
on/ignoring/group_left/group_right, bool, and/or/unless). Each expression is run as a
range query on both sides (and every fourth also as an instant query); the same series
must come back with values at the same times, equal to 1e-9 relative.

Deliberate differences, avoided rather than skipped (docs/aggregation.md):

- window edges: Prometheus 2 selects ``[t - w, t]``, metricskit (as Prometheus 3)
  ``(t - w, t]``. Sample times are never on a whole or half second; evaluation times are
  always on a half second, windows, offsets and subquery steps whole seconds, so neither
  a raw sample nor a subquery's inner point ever sits on an edge.
- NaN samples (skipped by range functions in metricskit, kept by Prometheus): only the
  metric ``dn`` has them, and it is only read by instant selectors, where a NaN sample is
  a NaN value on both sides (aggregations, operators and functions then see it).
- the rate/increase zero-point clamp order (Prometheus 2 clamps before choosing between
  "to the window edge" and "half an interval", 3 after): it differs only where the zero
  point lies between half and 1.1 average intervals before the first sample. Counters
  start at 5000, each increment is at most 60 and each restart drops to 35-50 % of the
  value before it (so never below 600): a window's ``(n - 1) * first / increase`` then
  stays above 1.1, whatever restarts it holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from metricskit import Series
from metricskit.errors import QueryError
from tests.interop.prom import (
    OMSeries,
    backfilled_prometheus,
    differential_seed,
    openmetrics_text,
    query_range_all,
    store_of,
)

pytestmark = pytest.mark.services

T0 = 1_700_000_000  # seconds; the data spans 40 minutes from here
SPAN_S = 2400
START, END, STEP = T0 + 360.5, T0 + SPAN_S + 120.5, 20
N_EXPRESSIONS = 300
JOBS, INSTS = ("a", "b", "c"), ("1", "2")
LES = ("0.1", "0.5", "1", "2.5", "+Inf")
REL = 1e-9
TRIG = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
        "atanh", "rad")  # fmt: skip
# day_of_year came after Prometheus 2.42
CALENDAR = ("minute", "hour", "day_of_week", "day_of_month", "days_in_month", "month", "year")


def _times(rng: np.random.Generator, gap: bool) -> np.ndarray:
    """Sample times in ms: irregular, never on a whole or half second."""
    interval = int(rng.choice([5_000, 10_000, 15_000, 30_000]))
    gaps = interval + rng.integers(-interval // 3, interval // 3 + 1, 800)
    ts = T0 * 1000 + int(rng.integers(1, 20_000)) + np.cumsum(gaps)
    ts = ts[ts < (T0 + SPAN_S) * 1000]
    if gap:  # a hole longer than the lookback: instant selectors must see nothing there
        lo = T0 * 1000 + int(rng.integers(600, 1400)) * 1000
        ts = ts[(ts < lo) | (ts > lo + int(rng.integers(330, 700)) * 1000)]
    ts = np.where(ts % 500 == 0, ts + 7, ts)
    return np.unique(ts)


def draw_data(rng: np.random.Generator) -> list[OMSeries]:
    out: list[OMSeries] = []
    for job in JOBS:
        for inst in INSTS:
            labels = {"job": job, "inst": inst}
            ts = _times(rng, gap=rng.random() < 0.3)
            if rng.random() < 0.3:  # stepwise: changes() and count_values have work
                g = rng.choice([10.0, 20.0, 35.5, 60.0], ts.size) + len(out) / 1000
            else:
                g = np.round(rng.uniform(20, 80) + np.cumsum(rng.normal(0, 3, ts.size)), 4)
            out.append(("dg", labels, list(zip(ts.tolist(), g.tolist(), strict=True))))
            ts = _times(rng, gap=rng.random() < 0.2)
            scale = rng.uniform(1, 20)
            steps = np.minimum(rng.exponential(scale, ts.size), 3 * scale)
            c = 5000 + np.cumsum(np.round(steps, 3))
            # Restarts in time order, each to 35-50 % of the value before it: the counter
            # stays above 600 and every window's zero point lies more than 1.1 average
            # intervals back (see the module docstring), a restart to nearly the value
            # before it would not (METRICSKIT_DIFF_SEED=906877491 met the difference).
            n_restarts = int(rng.integers(0, 3))
            restarts = rng.choice(np.arange(1, ts.size), size=n_restarts, replace=False)
            for at in np.sort(restarts):
                c[at:] -= c[at] - round(float(c[at - 1] * rng.uniform(0.35, 0.5)), 3)
            out.append(("dc_total", labels, list(zip(ts.tolist(), c.tolist(), strict=True))))
            ts = _times(rng, gap=False)
            n = np.round(rng.uniform(0, 100, ts.size), 3)
            n[rng.random(ts.size) < 0.2] = np.nan  # only ever read by instant selectors
            out.append(("dn", labels, list(zip(ts.tolist(), n.tolist(), strict=True))))
    for job in JOBS:
        ts = _times(rng, gap=False)
        per_bucket = rng.dirichlet(np.ones(len(LES)), ts.size) * rng.uniform(1, 30, (ts.size, 1))
        cumulative = np.cumsum(np.cumsum(per_bucket, axis=0), axis=1)
        for k, le in enumerate(LES):
            values = (1000 + np.round(cumulative[:, k], 3)).tolist()
            samples = list(zip(ts.tolist(), values, strict=True))
            out.append(("dh_bucket", {"job": job, "le": le}, samples))
    return out


class Grammar:
    """Random PromQL expressions that Prometheus and metricskit both accept."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def pick(self, *options: str) -> str:
        return self.r.choice(options)

    def window(self) -> str:
        return self.pick("30s", "1m", "90s", "2m", "5m", "7m", "10m")

    def matchers(self) -> str:
        m = self.pick(
            "", "", "", '{job="a"}', '{job!="b"}', '{job=~"a|c"}', '{inst!~"2"}',
            '{job=~"b.*",inst="1"}', '{job=""}',
        )  # fmt: skip
        return m

    def modifiers(self) -> str:
        return self.pick(
            "", "", "", "", " offset 2m", " offset 90s", f" @ {T0 + 1500.5}", " @ end()",
            " @ start()", " offset -1m",
        )  # fmt: skip

    def selector(self, metric: str | None = None) -> str:
        name = metric or self.pick("dg", "dg", "dc_total", "dn")
        if self.r.random() < 0.1:
            more = self.matchers()[1:-1]
            return f'{{__name__="{name}"{"," if more else ""}{more}}}'
        return f"{name}{self.matchers()}{self.modifiers()}"

    def matrix(self, metric: str | None = None) -> str:
        name = metric or self.pick("dg", "dc_total")
        if self.r.random() < 0.15:
            # rate only of counters: on a gauge the zero-point clamp order would differ
            inner = self.pick(
                "rate(dc_total[1m])", f"sum by (job) ({name})", f"deriv({name}[2m])", name
            )
            step = self.pick("30s", "1m", "20s", "")
            return f"{inner}[{self.pick('5m', '10m', '3m')}:{step}]{self.modifiers()}"
        return f"{name}{self.matchers()}[{self.window()}]{self.modifiers()}"

    def range_fn(self) -> str:
        fn = self.pick(
            "rate", "increase", "irate", "resets", "delta", "idelta", "deriv", "changes",
            "avg_over_time", "sum_over_time", "count_over_time", "min_over_time",
            "max_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time",
            "present_over_time", "quantile_over_time", "predict_linear",
        )  # fmt: skip
        counter = fn in ("rate", "increase", "irate", "resets")
        m = self.matrix("dc_total" if counter else None)
        if counter and ":" in m:  # a raw counter: a sum of counters can meet the zero-point clamp
            m = f"dc_total[{self.pick('5m', '3m')}:{self.pick('', '30s')}]"
        if fn == "quantile_over_time":
            return f"{fn}({self.pick('0', '0.25', '0.5', '0.9', '1', '1.5', '-1')}, {m})"
        if fn == "predict_linear":  # Prometheus 2.42 gets predict_linear(x @ t) wrong
            m = m if "@" not in m else m[: m.index(" @")]
            return f"{fn}({m}, {self.pick('60', '600', '-30')})"
        return f"{fn}({m})"

    def grouping(self) -> str:
        return self.pick(
            "", " by (job)", " by (inst)", " without (inst)", " by (job, inst)", " without (job)"
        )

    def aggregation(self, depth: int) -> str:
        op = self.pick(
            "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group", "topk",
            "bottomk", "quantile", "count_values",
        )  # fmt: skip
        inner = self.vector(depth - 1)
        while op in ("stddev", "stdvar") and "time()" in inner:
            # values near 1.7e9 spread by tens: Prometheus' running (Welford) variance loses
            # ~1e-8 of it there, metricskit's two-pass form does not (docs/promql.md)
            inner = self.vector(depth - 1)
        if op in ("topk", "bottomk"):
            # on ties (NaN ties too) Prometheus keeps whichever series its map yields first
            inner = self.pick(
                self.selector(self.pick("dg", "dc_total")), f"rate(dc_total[{self.window()}])",
                f"avg_over_time(dg[{self.window()}])", f"max_over_time(dc_total[{self.window()}])",
            )  # fmt: skip
            return f"{op}{self.grouping()} ({self.pick('1', '2', '3')}, {inner})"
        if op == "quantile":
            return f"{op}{self.grouping()} ({self.pick('0.5', '0.9', '0', '1')}, {inner})"
        if op == "count_values":  # of stored values: see function()
            return f'{op}{self.grouping()} ("v", round({self.selector()} / 10))'
        return f"{op}{self.grouping()} ({inner})"

    def function(self, depth: int) -> str:
        v = self.vector(depth - 1)
        # Steps (ceil, floor, round, sgn, %) of computed values would turn a last-bit
        # difference of a sum into a whole unit: they get stored values only.
        s = self.selector()
        return self.pick(
            f"abs({v} - 50)", f"ceil({s})", f"floor({s})", f"exp({v} / 100)", f"ln({v})",
            f"log2({v})", f"log10({v})", f"sqrt({v})", f"sgn({s} - 50)", f"round({s})",
            f"round({s}, 5)", f"clamp({v}, 30, 60)", f"clamp_min({v}, 40)",
            f"clamp_max({v}, 40)", f"{self.pick(*TRIG)}({v} / 100)", f"deg({v})",
            f'label_replace({v}, "x", "j-$1", "job", "(.*)")',
            f'label_join({v}, "x", "-", "job", "inst")', f"timestamp({self.selector()})",
            f"time() - timestamp({self.selector()})", f"vector(scalar(sum({v})))",
            f'absent(dg{{job="{self.pick("a", "zz")}"}})',
            f'absent_over_time(dc_total{{job="{self.pick("b", "zz")}"}}[{self.window()}])',
            f"sort({v})", f"sort_desc({v})", f"{v} * scalar(count(dg))",
            f"{self.pick(*CALENDAR)}()", f"{self.pick(*CALENDAR)}(timestamp({self.selector()}))",
            # stored values (a step function again, see above), and not dn's NaN: Prometheus
            # returns a field of int64(NaN) seconds, metricskit NaN
            f"{self.pick(*CALENDAR)}({self.selector(self.pick('dg', 'dc_total'))} * 1e5)",
        )  # fmt: skip

    def histogram(self) -> str:
        q = self.pick("0.5", "0.9", "0.99", "0.1")
        inner = self.pick(
            "dh_bucket",
            f"sum by (le) (rate(dh_bucket[{self.window()}]))",
            f"sum by (le, job) (increase(dh_bucket[{self.window()}]))",
        )
        return f"histogram_quantile({q}, {inner})"

    def binary(self, depth: int) -> str:
        kind = self.r.randrange(6)
        a = self.vector(depth - 1)
        op = self.pick("+", "-", "*", "/", "^", "atan2")
        cmp = self.pick("==", "!=", ">", "<", ">=", "<=")
        if kind == 0:
            number = self.pick("2", "50", "0.5", "-3")
            if self.r.random() < 0.2:  # % of stored values only: see function()
                a, op = self.selector(), "%"
            return self.pick(f"{a} {op} {number}", f"{number} {op} {a}")
        if kind == 1:
            bool_ = self.pick("", " bool")
            return self.pick(f"{a} {cmp}{bool_} 50", f"40 {cmp}{bool_} {a}")
        if kind == 2:  # one-to-one: dg and dc_total share their label sets
            on = self.pick("", " on (job, inst)", " ignoring (x)")
            return f"dg {self.pick(op, cmp, cmp + ' bool')}{on} {self.range_fn_on('dc_total')}"
        if kind == 3:  # many-to-one and one-to-many
            one = f"sum by (job) ({self.selector('dc_total')})"
            many = self.selector("dg")
            if self.r.random() < 0.5:
                return f"{many} {op} on (job) group_left {one}"
            return f"{one} {op} on (job) group_right {many}"
        if kind == 4:
            setop = self.pick("and", "or", "unless")
            on = self.pick("", " on (job)", " ignoring (inst)")
            b = self.pick(f"dg > {self.pick('30', '50', '70')}", "dc_total", 'dg{inst="1"}')
            return f"{a} {setop}{on} {b}"
        scalar = self.pick("time()", "scalar(sum(dg))", "pi()", "vector(1)")
        return f"{a} {op} {scalar}"

    def range_fn_on(self, metric: str) -> str:
        return self.pick(metric, f"rate({metric}[5m])", f"{metric} offset 1m")

    def vector(self, depth: int) -> str:
        if depth <= 0:
            return self.pick(self.selector(), self.range_fn())
        choices: list[Callable[[], str]] = [
            self.selector,
            self.range_fn,
            self.range_fn,
            lambda: self.aggregation(depth),
            lambda: self.aggregation(depth),
            lambda: self.function(depth),
            lambda: self.binary(depth),
            lambda: self.binary(depth),
            self.histogram,
        ]
        return self.r.choice(choices)()

    def expression(self) -> str:
        return self.vector(self.r.choice([1, 2, 2, 3]))


Result = dict[tuple[tuple[str, str], ...], dict[int, float]]


def _ours_range(store, expr: str) -> Result:  # type: ignore[no-untyped-def]
    frame = store.promql_range(expr, START, END, f"{STEP}s")
    return _from_series(frame.attrs["series"])


def _from_series(series: list[Series]) -> Result:
    out: Result = {}
    for s in series:
        labels = dict(s.tags)
        if s.name:
            labels["__name__"] = s.name
        key = tuple(sorted(labels.items()))
        stamps = (s.timestamps // 1_000_000).tolist()
        out[key] = dict(zip(stamps, s.values.tolist(), strict=True))
    return out


def _theirs_range(url: str, expr: str) -> Result:
    return {tuple(sorted(m.items())): v for m, v in query_range_all(url, expr, START, END, STEP)}


Labelled = list[tuple[tuple[tuple[str, str], ...], float]]


def _theirs_instant(url: str, expr: str, at: float) -> Labelled:
    resp = requests.get(f"{url}/api/v1/query", params={"query": expr, "time": at}, timeout=60)
    resp.raise_for_status()
    data = resp.json()["data"]
    if data["resultType"] == "scalar":
        return [((), float(data["result"][1]))]
    return [(tuple(sorted(r["metric"].items())), float(r["value"][1])) for r in data["result"]]


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _compare(expr: str, ours: Result, theirs: Result) -> list[str]:
    problems = []
    if set(ours) != set(theirs):
        only_ours = sorted(set(ours) - set(theirs))[:3]
        only_theirs = sorted(set(theirs) - set(ours))[:3]
        return [f"{expr}: series differ: only ours {only_ours}, only Prometheus {only_theirs}"]
    for key, points in theirs.items():
        mine = ours[key]
        if set(mine) != set(points):
            diff = sorted(set(mine) ^ set(points))[:4]
            problems.append(f"{expr} {dict(key)}: times differ at {diff}")
            continue
        bad = [(t, mine[t], v) for t, v in points.items() if not _same(mine[t], v)]
        if bad:
            problems.append(f"{expr} {dict(key)}: values differ (t, ours, Prometheus) {bad[:3]}")
    return problems


def test_random_expressions_match_prometheus(tmp_path: Path) -> None:
    seed = differential_seed()
    data = draw_data(np.random.default_rng(seed))
    grammar = Grammar(random.Random(seed))
    expressions = [grammar.expression() for _ in range(N_EXPRESSIONS)]
    store = store_of(data)
    problems: list[str] = []
    refused = 0
    with backfilled_prometheus(tmp_path, openmetrics_text(data)) as url:
        for i, expr in enumerate(expressions):
            try:
                theirs = _theirs_range(url, expr)
            except requests.HTTPError as exc:  # Prometheus refuses: so must metricskit
                with pytest.raises(QueryError):
                    _ours_range(store, expr)
                refused += 1
                print(f"both refuse {expr}: {exc.response.text[:200]}")
                continue
            try:
                ours = _ours_range(store, expr)
            except Exception as exc:  # reported with the expression
                problems.append(f"{expr}: metricskit raised {exc!r}")
                continue
            problems += _compare(expr, ours, theirs)
            if i % 4 == 0:
                at = START + STEP * random.Random(seed + i).randrange(100)
                want = _theirs_instant(url, expr, at)
                got = store.promql(expr, time=at)
                ours = _from_series(got.attrs["series"])
                mine = {k: next(iter(v.values())) for k, v in ours.items()}
                if {k for k, _ in want} != set(mine):
                    problems.append(f"instant {expr} @ {at}: series differ")
                elif not all(_same(mine[k], v) for k, v in want):
                    problems.append(f"instant {expr} @ {at}: values differ")
                elif (
                    expr.startswith("sort")
                    # ties (NaNs among them: NaN != NaN, yet they tie) may come in any order
                    and len({"NaN" if math.isnan(v) else v for _, v in want}) == len(want)
                    and [k for k, _ in want] != list(mine)
                ):
                    problems.append(f"instant {expr} @ {at}: order differs")
    print(f"{len(expressions)} expressions, {refused} refused by both")
    assert refused < len(expressions) // 10, "the grammar should make valid expressions"
    assert not problems, f"{len(problems)} of {len(expressions)} expressions differ:\n" + "\n".join(
        problems[:25]
    )
