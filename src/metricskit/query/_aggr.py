"""Aggregations: sum avg min max count group stddev stdvar quantile topk bottomk count_values.

Each group (the ``by`` labels, or all but ``__name__`` and the ``without`` ones) reduces
its rows' present samples at every time at once.
"""

from __future__ import annotations

import warnings

import numpy as np

from metricskit.errors import QueryError
from metricskit.query._eval import Context, evaluate
from metricskit.query._plan import Aggregate
from metricskit.query._values import (
    BOOL,
    F64,
    I64,
    NAME,
    Labels,
    Scalar,
    StringValue,
    Vector,
    merge,
)

__all__ = ["aggregate", "format_value", "quantile_of"]


def _group_labels(labels: Labels, node: Aggregate) -> Labels:
    if node.without:
        skip = {NAME, *node.grouping}
        return tuple(kv for kv in labels if kv[0] not in skip)
    keep = set(node.grouping)
    return tuple(kv for kv in labels if kv[0] in keep)


def quantile_of(q: F64, values: F64, present: BOOL) -> F64:
    """Prometheus' ``quantile``: linear interpolation between the closest ranks, per column.

    Present NaN values sort before every number, as Go's sort puts them.

    ``q`` (one per column) below 0 gives -Inf, above 1 +Inf.
    """
    nan = np.isnan(values)
    # Go's sort puts NaN first (Prometheus' ordering); absent rows go last
    klass = np.where(present, np.where(nan, 0, 1), 2)
    order = np.lexsort((np.where(nan | ~present, 0.0, values), klass), axis=0)
    ordered = np.take_along_axis(np.where(present, values, np.nan), order, axis=0)
    n = present.sum(axis=0)
    with np.errstate(invalid="ignore"):
        rank = q * (n - 1)
    lower = np.clip(np.floor(np.nan_to_num(rank)), 0, np.maximum(n - 1, 0)).astype(np.intp)
    upper = np.minimum(lower + 1, np.maximum(n - 1, 0))
    weight = np.nan_to_num(rank) - np.floor(np.nan_to_num(rank))
    cols = np.arange(ordered.shape[1])
    lo = ordered[lower, cols] if ordered.shape[0] else np.full(cols.shape, np.nan)
    hi = ordered[upper, cols] if ordered.shape[0] else np.full(cols.shape, np.nan)
    with np.errstate(invalid="ignore"):
        out = lo * (1 - weight) + hi * weight
    out = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, out))
    result: F64 = np.where(np.isnan(q), np.nan, out)
    return result


def format_value(v: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` spells it."""
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(np.format_float_positional(v, trim="-"))


def _reduce(op: str, values: F64, present: BOOL, q: F64 | None) -> F64:
    count = present.sum(axis=0)
    safe = np.where(count > 0, count, 1)
    with np.errstate(all="ignore"):
        # -0 (absent rows, and numpy's start) is the identity of +: Prometheus starts
        # from the first value, so a lone -0 sums (and averages) to -0, not 0
        if op == "sum":
            result: F64 = np.where(present, values, -0.0).sum(axis=0, initial=-0.0)
        elif op == "count":
            result = count.astype(np.float64)
        elif op == "group":
            result = np.ones(values.shape[1])
        elif op in ("min", "max"):
            # absent rows as NaN; a group whose present values are all NaN gives NaN
            filled = np.where(present, values, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = (np.nanmin if op == "min" else np.nanmax)(filled, axis=0)
        elif op in ("avg", "stddev", "stdvar"):
            mean = np.where(present, values, -0.0).sum(axis=0, initial=-0.0) / safe
            if op == "avg":
                return np.asarray(mean, dtype=np.float64)
            dev = np.where(present, values - mean, 0.0)
            var = (dev * dev).sum(axis=0) / safe
            var = np.where(count == 1, 0.0, var)  # Prometheus: one sample, even NaN, is 0
            # equal values: exactly 0, as Prometheus' running form gives (see _range._spread)
            filled = np.where(present, values, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                low = np.nanmin(filled, axis=0)
                equal = (low == np.nanmax(filled, axis=0)) & np.isfinite(low)
            equal &= ~(present & np.isnan(values)).any(axis=0)  # a NaN keeps NaN
            var = np.where(equal, 0.0, var)
            result = var if op == "stdvar" else np.sqrt(var)
        else:  # quantile
            assert q is not None
            result = quantile_of(q, values, present)
    return result


def _param(ctx: Context, node: Aggregate, times: I64) -> Scalar | StringValue | None:
    if node.param is None:
        return None
    value = evaluate(ctx, node.param, times)
    if not isinstance(value, Scalar | StringValue):
        raise QueryError(f"the parameter of {node.op} must be a scalar or a string")
    return value


def aggregate(ctx: Context, node: Aggregate, times: I64) -> Vector:
    """Evaluate an aggregation at every time of ``times``."""
    param = _param(ctx, node, times)
    inner = evaluate(ctx, node.expr, times)
    if not isinstance(inner, Vector):
        raise QueryError(f"{node.op}() needs an instant vector")
    groups: dict[Labels, list[int]] = {}
    for i, la in enumerate(inner.labels):
        groups.setdefault(_group_labels(la, node), []).append(i)
    steps = times.shape[0]
    if node.op in ("topk", "bottomk"):
        assert isinstance(param, Scalar)
        return _topk(node.op, inner, groups, param.values)
    if node.op == "count_values":
        if not isinstance(param, StringValue):
            raise QueryError("count_values needs a label name as its first argument")
        return _count_values(param.value, inner, groups, steps)
    q = param.values if isinstance(param, Scalar) else None
    labels, values, present = [], [], []
    for key, rows in groups.items():
        pres = inner.present[rows]
        any_present = pres.any(axis=0)
        if not any_present.any():
            continue
        labels.append(key)
        values.append(_reduce(node.op, inner.values[rows], pres, q))
        present.append(any_present)
    if not labels:
        return Vector.empty(steps)
    return Vector(labels, np.array(values), np.array(present))


def _topk(op: str, inner: Vector, groups: dict[Labels, list[int]], k: F64) -> Vector:
    present = np.zeros_like(inner.present)
    with np.errstate(invalid="ignore"):
        limit = np.where(np.isfinite(k), k, 0).astype(np.int64)
    for rows in groups.values():
        vals = inner.values[rows]
        pres = inner.present[rows]
        # absent last, then NaN, then by value (descending for topk)
        rank_value = np.where(np.isnan(vals), 0.0, -vals if op == "topk" else vals)
        klass = np.where(pres, np.where(np.isnan(vals), 1, 0), 2)
        order = np.lexsort((rank_value, klass), axis=0)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(len(rows))[:, None], axis=0)
        present[rows] = pres & (ranks < limit[None, :])
    return Vector(list(inner.labels), inner.values, present)


def _count_values(label: str, inner: Vector, groups: dict[Labels, list[int]], steps: int) -> Vector:
    labels, values, present = [], [], []
    for key, rows in groups.items():
        vals = inner.values[rows]
        pres = inner.present[rows]
        texts = {format_value(float(v)) for v in np.unique(vals[pres])}
        if np.isnan(vals[pres]).any():
            texts.add("NaN")
        for text in sorted(texts):
            same = pres & (np.isnan(vals) if text == "NaN" else (vals == float(text)))
            # two floats printing alike are one value, as in Prometheus' map of strings
            count = same.sum(axis=0)
            base = dict(kv for kv in key if kv[0] != label)
            base[label] = text
            labels.append(tuple(sorted(base.items())))
            values.append(count.astype(np.float64))
            present.append(count > 0)
    if not labels:
        return Vector.empty(steps)
    return merge(Vector(labels, np.array(values), np.array(present)))
