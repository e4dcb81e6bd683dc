"""Evaluate a plan at every evaluation time at once.

Selectors, offsets, ``@`` and subqueries are here; functions, aggregations and binary
operators in their own modules. Each node is evaluated once for the whole time grid:
a selector is a ``searchsorted`` per series, a range function one windowed kernel call.
Semantics are Prometheus 3's: an instant selector takes the newest sample in
``(t - 5m, t]``, a range selector the samples in ``(t - range, t]``; a subquery's inner
times are the multiples of its step (default 1 m) inside its range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metricskit.errors import QueryError
from metricskit.query._plan import (
    Aggregate,
    At,
    Binary,
    Call,
    MatrixSelector,
    Negate,
    Node,
    Number,
    String,
    Subquery,
    VectorSelector,
)
from metricskit.query._select import Fetched
from metricskit.query._values import I64, RangeVector, Scalar, StringValue, Value, Vector, drop_name

__all__ = ["LOOKBACK_NS", "SUBQUERY_STEP_NS", "Context", "evaluate", "spans"]

LOOKBACK_NS = 5 * 60 * 1_000_000_000
"""Prometheus' default lookback delta: an instant selector sees samples up to 5 m old."""
SUBQUERY_STEP_NS = 60 * 1_000_000_000
"""A subquery without a step uses Prometheus' default evaluation interval, 1 m."""


@dataclass
class Context:
    """What evaluation needs besides the plan: data, the query's start/end, the functions."""

    fetched: Fetched
    start_ns: int
    end_ns: int
    functions: dict[str, Callable[[Context, tuple[Node, ...], I64], Value]]


def _at_times(at: At | None, times: I64, start_ns: int, end_ns: int) -> I64:
    if at is None:
        return times
    fixed = {"start": start_ns, "end": end_ns}.get(at.kind, at.time_ns)
    return np.full(times.shape, fixed, dtype=np.int64)


def _span_of(at: At | None, offset: int, lo: int, hi: int, start: int, end: int) -> tuple[int, int]:
    if at is not None:
        lo = hi = {"start": start, "end": end}.get(at.kind, at.time_ns)
    return lo - offset, hi - offset


def spans(
    node: Node, lo: int, hi: int, start: int, end: int, out: dict[VectorSelector, tuple[int, int]]
) -> None:
    """Add to ``out`` the time span each selector under ``node`` reads, for times [lo, hi]."""
    if isinstance(node, VectorSelector | MatrixSelector):
        sel = node if isinstance(node, VectorSelector) else node.selector
        reach = LOOKBACK_NS if isinstance(node, VectorSelector) else node.range_ns
        s_lo, s_hi = _span_of(sel.at, sel.offset_ns, lo, hi, start, end)
        old = out.get(sel)
        span = (s_lo - reach, s_hi)
        out[sel] = span if old is None else (min(old[0], span[0]), max(old[1], span[1]))
    elif isinstance(node, Subquery):
        s_lo, s_hi = _span_of(node.at, node.offset_ns, lo, hi, start, end)
        spans(node.expr, s_lo - node.range_ns, s_hi, start, end, out)
    elif isinstance(node, Call):
        for arg in node.args:
            spans(arg, lo, hi, start, end, out)
    elif isinstance(node, Aggregate):
        spans(node.expr, lo, hi, start, end, out)
        if node.param is not None:
            spans(node.param, lo, hi, start, end, out)
    elif isinstance(node, Binary):
        spans(node.lhs, lo, hi, start, end, out)
        spans(node.rhs, lo, hi, start, end, out)
    elif isinstance(node, Negate):
        spans(node.expr, lo, hi, start, end, out)


def select_instant(ctx: Context, sel: VectorSelector, times: I64) -> tuple[Vector, I64]:
    """The newest sample in ``(t - 5m, t]`` of each matched series; also its timestamps."""
    at = _at_times(sel.at, times, ctx.start_ns, ctx.end_ns) - sel.offset_ns
    rows = ctx.fetched.by_selector.get(sel, [])
    values = np.full((len(rows), times.shape[0]), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    stamps = np.zeros(values.shape, dtype=np.int64)
    for i, r in enumerate(rows):
        ts, vals = ctx.fetched.samples[r]
        idx = np.searchsorted(ts, at, "right") - 1
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        if ts.size:
            ok &= ts[safe] > at - LOOKBACK_NS
            values[i] = vals[safe]
            stamps[i] = ts[safe]
        present[i] = ok
    labels = [ctx.fetched.labels[r] for r in rows]
    return Vector(labels, values, present), stamps


def select_range(ctx: Context, node: MatrixSelector, times: I64) -> RangeVector:
    """The samples of each matched series, with the windows' end times."""
    sel = node.selector
    at = _at_times(sel.at, times, ctx.start_ns, ctx.end_ns) - sel.offset_ns
    rows = ctx.fetched.by_selector.get(sel, [])
    return RangeVector(
        [ctx.fetched.labels[r] for r in rows],
        [ctx.fetched.samples[r] for r in rows],
        at,
        node.range_ns,
        sel,
    )


def subquery(ctx: Context, node: Subquery, times: I64) -> RangeVector:
    """Evaluate the inner expression on its step grid; windows end at the outer times."""
    at = _at_times(node.at, times, ctx.start_ns, ctx.end_ns) - node.offset_ns
    step = node.step_ns or SUBQUERY_STEP_NS
    lo = int(at.min()) - node.range_ns
    first = -(-lo // step) * step  # the first multiple of step at or after lo
    inner_times = np.arange(first, int(at.max()) + 1, step, dtype=np.int64)
    inner = evaluate(ctx, node.expr, inner_times)
    if not isinstance(inner, Vector):
        raise QueryError("a subquery needs an instant-vector expression inside")
    samples = [(inner_times[p], v[p]) for v, p in zip(inner.values, inner.present, strict=True)]
    return RangeVector(list(inner.labels), samples, at, node.range_ns)


def evaluate(ctx: Context, node: Node, times: I64) -> Value:
    """The value of ``node`` at every time of ``times``."""
    if isinstance(node, Number):
        return Scalar(np.full(times.shape, node.value))
    if isinstance(node, String):
        return StringValue(node.value)
    if isinstance(node, VectorSelector):
        return select_instant(ctx, node, times)[0]
    if isinstance(node, MatrixSelector):
        return select_range(ctx, node, times)
    if isinstance(node, Subquery):
        return subquery(ctx, node, times)
    if isinstance(node, Negate):
        inner = evaluate(ctx, node.expr, times)
        if isinstance(inner, Scalar):
            return Scalar(-inner.values)
        if isinstance(inner, Vector):
            return Vector([drop_name(la) for la in inner.labels], -inner.values, inner.present)
        raise QueryError("unary minus needs a scalar or an instant vector")
    if isinstance(node, Call):
        return ctx.functions[node.func](ctx, node.args, times)
    # imported here: these modules build on this one's evaluate()
    if isinstance(node, Aggregate):
        from metricskit.query._aggr import aggregate

        return aggregate(ctx, node, times)
    from metricskit.query._binop import binary

    return binary(ctx, node, times)
