"""Random differential test: metricskit's range functions against a real Prometheus.

Every run draws a new set of series (seeded: ``METRICSKIT_DIFF_SEED`` repeats a run; the
seed is printed) — gauges, counters with resets, irregular and sparse scrapes, huge values,
runs of equal values, NaN and +-Inf samples — backfills them into one Prometheus (Debian's
2.42) and asks it every range function over random windows for all series at once. Each
(function, window, series) is one case, compared at every evaluation time: the same times
must have a value, and the values must agree (NaN with NaN, Inf with Inf). metricskit's
side is the frames users get (``rate_frame``/``over_time_frame``, what ``Store.rate`` and
``Store.over_time`` return), and ``rate_frame(by=["kind"])`` is compared with
``sum by (kind) (...)`` of the rate-like functions.

Deliberate differences, documented in docs/aggregation.md and pinned here:

- window edges: Prometheus 2 selects ``[t - w, t]``, metricskit (as Prometheus 3)
  ``(t - w, t]``; sample times are never on a whole second and windows/evaluation times
  always are, so no sample sits on an edge.
- NaN samples: metricskit drops them before windowing; Prometheus keeps them. A series
  with NaN is loaded twice, as is and without its NaN (label ``twin="nonan"``): metricskit
  on the NaN series must equal Prometheus on the twin everywhere, and equal Prometheus on
  the NaN series wherever the window holds no NaN.
- ``rate``/``increase`` zero-point clamp: Prometheus 2 compares the time to the counter's
  zero point before choosing between "to the window edge" and "half an interval",
  Prometheus 3 (and metricskit) after; times where the two orders give different results
  are counted and skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from metricskit import Series, SeriesKey
from metricskit.query.analysis import over_time_frame, rate_frame
from tests.interop.prom import (
    OMSeries,
    backfilled_prometheus,
    differential_seed,
    openmetrics_text,
    query_range_all,
)

pytestmark = pytest.mark.services

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_040  # seconds; the data span 30 minutes from here
SPAN_S = 1800
START_S, END_S, STEP_S = T0 + 240, T0 + SPAN_S + 60, 15
N_SERIES = 48
WINDOWS_S = (8, 20, 45, 60, 95, 180, 300)
QUANTILES = (0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
RATE_LIKE = ("rate", "increase", "delta", "deriv")
OVER_TIME = ("avg", "sum", "count", "min", "max", "stddev", "last", "quantile")
METRIC = "diff_v"


@dataclass
class Drawn:
    """One generated series: ids, kind, sample times (ms) and values."""

    sid: str
    kind: str
    ts_ms: np.ndarray
    values: np.ndarray

    @property
    def has_nan(self) -> bool:
        return bool(np.isnan(self.values).any())


def _times(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Sample times in ms, strictly increasing, never on a whole second."""
    start = T0 * 1000 + int(rng.integers(0, 30_000))
    if kind in ("irregular", "sparse"):
        lo, hi = (1_000, 60_000) if kind == "irregular" else (20_000, 150_000)
        gaps = rng.integers(lo, hi, 400)
    else:
        interval = int(rng.choice([5_000, 10_000, 15_000, 30_000]))
        gaps = interval + rng.integers(-interval // 4, interval // 4 + 1, 400)
    ts = start + np.cumsum(gaps)
    ts = ts[ts < (T0 + SPAN_S) * 1000]
    ts = np.where(ts % 1000 == 0, ts + 1, ts)  # off every whole second: off every edge
    return np.unique(ts)


def _values(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind in ("counter", "counter_nan", "counter_inf", "big_counter"):
        v = np.cumsum(np.round(rng.exponential(rng.uniform(0.5, 20), n), 3))
        v += 0.0 if rng.random() < 0.3 else float(rng.integers(1, 10_000))
        for at in rng.choice(n, size=int(rng.integers(0, 4)), replace=False) if n else []:
            # a restart: from here on the counter counts from a small value (or zero)
            v[at:] -= v[at] - (0.0 if rng.random() < 0.5 else float(rng.uniform(0, 5)))
        if kind == "big_counter":
            v += 1e12
    elif kind == "steps":
        v = rng.choice([0.0, 1.0, 1.0, 2.5, -3.0], n)
    elif kind == "big_gauge":
        v = 1e12 + np.round(rng.normal(0, 50, n), 2)
    else:
        v = np.round(rng.normal(rng.uniform(-100, 100), rng.uniform(0.1, 30), n), 3)
    if kind.endswith("_nan") and n:
        v[rng.random(n) < 0.15] = np.nan
    if kind.endswith("_inf") and n:
        hit = rng.random(n) < 0.08
        v[hit] = rng.choice([math.inf, -math.inf] if kind == "gauge_inf" else [math.inf], hit.sum())
    return v


KINDS = (
    "gauge",
    "counter",
    "irregular",
    "sparse",
    "steps",
    "big_gauge",
    "big_counter",
    "gauge_nan",
    "counter_nan",
    "gauge_inf",
    "counter_inf",
)


def draw_series(rng: np.random.Generator) -> list[Drawn]:
    out = []
    for i in range(N_SERIES):
        kind = KINDS[i % len(KINDS)] if i < len(KINDS) else str(rng.choice(KINDS))
        # a third share the previous series' times: the shared-grid path of range_function_many
        ts = out[-1].ts_ms if out and rng.random() < 0.33 else _times(rng, kind)
        out.append(Drawn(str(i), kind, ts, _values(rng, kind, ts.size)))
    return out


def _om(series: list[Drawn]) -> list[OMSeries]:
    out: list[OMSeries] = []
    for s in series:
        samples = list(zip(s.ts_ms.tolist(), s.values.tolist(), strict=True))
        out.append((METRIC, {"id": s.sid, "kind": s.kind}, samples))
        if s.has_nan:
            clean = [(t, v) for t, v in samples if not math.isnan(v)]
            out.append((METRIC, {"id": s.sid, "kind": s.kind, "twin": "nonan"}, clean))
    return out


@dataclass
class Case:
    fn: str
    window_s: int
    q: float | None = None

    @property
    def promql(self) -> str:
        if self.fn in RATE_LIKE:
            return f"{self.fn}({METRIC}[{self.window_s}s])"
        if self.fn == "quantile":
            return f"quantile_over_time({self.q}, {METRIC}[{self.window_s}s])"
        return f"{self.fn}_over_time({METRIC}[{self.window_s}s])"


def draw_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for fn in RATE_LIKE + OVER_TIME:
        for w in rng.choice(WINDOWS_S, size=2, replace=False).tolist():
            q = float(rng.choice(QUANTILES)) if fn == "quantile" else None
            cases.append(Case(fn, int(w), q))
    return cases


def metricskit_values(case: Case, series: list[Drawn]) -> list[dict[int, float]]:
    """Each series' values by time (ms), from the frames users get (``Store.rate``, ...)."""
    keyed = [
        Series(SeriesKey.of(METRIC, {"id": s.sid}), s.ts_ms.astype(np.int64) * MS, s.values)
        for s in series
    ]
    window, step, start, end = f"{case.window_s}s", f"{STEP_S}s", START_S * S, END_S * S
    if case.fn in RATE_LIKE:
        frame = rate_frame(keyed, window, step, start, end, fn=case.fn)
    else:
        frame = over_time_frame(keyed, case.fn, window, step, start, end, q=case.q)
    out: dict[str, dict[int, float]] = {s.sid: {} for s in series}
    stamps = (frame["timestamp"].astype("int64") // MS).tolist()
    for sid, t, v in zip(frame["id"].tolist(), stamps, frame["value"].tolist(), strict=True):
        out[sid][t] = v
    return [out[s.sid] for s in series]


def _window(s: Drawn, t_ms: int, w_s: int) -> np.ndarray:
    inside = (s.ts_ms > t_ms - w_s * 1000) & (s.ts_ms <= t_ms)
    return s.values[inside]


def prometheus_2_rate_differs(s: Drawn, t_ms: int, w_s: int) -> bool:
    """True where Prometheus 2's and 3's zero-point clamps give different rate/increase."""
    inside = (s.ts_ms > t_ms - w_s * 1000) & (s.ts_ms <= t_ms) & ~np.isnan(s.values)
    ts, v = s.ts_ms[inside] / 1000, s.values[inside]
    if v.size < 2:
        return False
    with np.errstate(invalid="ignore"):
        result = v[-1] - v[0] + float(np.sum(v[:-1][v[1:] < v[:-1]]))
    if not (result > 0 and v[0] >= 0):
        return False
    sampled = ts[-1] - ts[0]
    avg = sampled / (v.size - 1)
    to_zero = sampled * (v[0] / result)
    to_start = ts[0] - (t_ms / 1000 - w_s)
    return bool(to_start >= avg * 1.1 and avg / 2 <= to_zero <= avg * 1.1)


def agree(fn: str, mine: float, theirs: float, window: np.ndarray) -> bool:
    if math.isnan(mine) or math.isnan(theirs):
        return math.isnan(mine) and math.isnan(theirs)
    if math.isinf(mine) or math.isinf(theirs):
        return mine == theirs
    finite = window[np.isfinite(window)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    # Prometheus sums with Kahan compensation and (deriv) on raw, uncentred sums:
    # allow the rounding of the window's magnitude, not of the result's
    slack = 1e-13 * scale * max(window.size, 1) * (1e3 if fn == "deriv" else 1.0)
    return math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=slack + 1e-12)


@dataclass
class Run:
    seed: int
    series: list[Drawn]
    cases: list[Case]
    answers: dict[str, list[tuple[dict[str, str], dict[int, float]]]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    seed = differential_seed()
    rng = np.random.default_rng(seed)
    series = draw_series(rng)
    cases = draw_cases(rng)
    root = tmp_path_factory.mktemp("prometheus_differential")
    with backfilled_prometheus(root, openmetrics_text(_om(series))) as url:
        queries = [c.promql for c in cases] + [_sum_by_kind(c) for c in cases if c.fn in RATE_LIKE]
        answers = {q: query_range_all(url, q, START_S, END_S, STEP_S) for q in queries}
    yield Run(seed, series, cases, answers)


def _sum_by_kind(case: Case) -> str:
    # NaN-free series only: Prometheus would carry a NaN sample into its group's sum
    selector = f'{METRIC}{{kind!~".*_nan"}}'
    return f"sum by (kind) ({case.promql.replace(METRIC, selector)})"


def test_sum_by_of_rate_like_functions_agrees_with_prometheus(run: Run) -> None:
    """``rate_frame(by=...)`` is ``sum by (...) (rate(...))``: one row where any member has one."""
    chosen = [s for s in run.series if not s.has_nan]
    keyed = [
        Series(SeriesKey.of(METRIC, {"kind": s.kind, "id": s.sid}), s.ts_ms * MS, s.values)
        for s in chosen
    ]
    problems: list[str] = []
    compared = 0
    for case in run.cases:
        if case.fn not in RATE_LIKE:
            continue
        frame = rate_frame(
            keyed, f"{case.window_s}s", f"{STEP_S}s", START_S * S, END_S * S, ["kind"], case.fn
        )
        stamps = (frame["timestamp"].astype("int64") // MS).tolist()
        kinds = frame["kind"].tolist()
        mine = dict(zip(zip(kinds, stamps, strict=True), frame["value"].tolist(), strict=True))
        theirs = {
            (m["kind"], t): v
            for m, values in run.answers[_sum_by_kind(case)]
            for t, v in values.items()
        }
        for key in sorted(set(mine) | set(theirs)):
            kind, t = key
            members = [s for s in chosen if s.kind == kind]
            if case.fn in ("rate", "increase") and any(
                prometheus_2_rate_differs(s, t, case.window_s) for s in members
            ):
                continue
            compared += 1
            where = f"sum by (kind) {case.promql} kind={kind} t={t / 1000}"
            if key not in mine or key not in theirs:
                problems.append(
                    f"{where}: metricskit {mine.get(key)}, Prometheus {theirs.get(key)}"
                )
                continue
            window = np.concatenate([_window(s, t, case.window_s) for s in members])
            if not agree(case.fn, mine[key], theirs[key], window):
                problems.append(f"{where}: metricskit {mine[key]!r}, Prometheus {theirs[key]!r}")
    assert compared >= 100
    assert not problems, f"seed {run.seed}: {len(problems)} disagreements:\n" + "\n".join(
        problems[:40]
    )


def test_range_functions_agree_with_prometheus(run: Run) -> None:
    problems: list[str] = []
    compared = values = skipped_edge = nan_windows = 0
    for case in run.cases:
        theirs = {(m["id"], m.get("twin")): v for m, v in run.answers[case.promql]}
        for s, mine in zip(run.series, metricskit_values(case, run.series), strict=True):
            compared += 1
            reference = theirs.get((s.sid, "nonan" if s.has_nan else None), {})
            as_is = theirs.get((s.sid, None), {})
            for t in sorted(set(mine) | set(reference)):
                window = _window(s, t, case.window_s)
                if case.fn in ("rate", "increase") and prometheus_2_rate_differs(
                    s, t, case.window_s
                ):
                    skipped_edge += 1
                    continue
                where = f"{case.promql} id={s.sid} ({s.kind}) t={t / 1000}"
                if (t in mine) != (t in reference):
                    problems.append(
                        f"{where}: metricskit {mine.get(t)}, Prometheus {reference.get(t)}"
                    )
                    continue
                values += 1
                if not agree(case.fn, mine[t], reference[t], window):
                    problems.append(f"{where}: metricskit {mine[t]!r}, Prometheus {reference[t]!r}")
                if s.has_nan:
                    if np.isnan(window).any():
                        nan_windows += 1
                    elif t not in as_is or not agree(case.fn, mine[t], as_is[t], window):
                        problems.append(f"{where}: no NaN in the window, yet differs as is")
    print(
        f"seed {run.seed}: {compared} cases ({len(run.cases)} queries x {len(run.series)} "
        f"series), {values} values compared, {skipped_edge} times skipped for the "
        f"Prometheus 2/3 zero-point difference, {nan_windows} windows holding NaN "
        "compared with the NaN-free twin"
    )
    assert compared >= 500 and values >= 50 * compared
    assert not problems, f"seed {run.seed}: {len(problems)} disagreements:\n" + "\n".join(
        problems[:40]
    )
