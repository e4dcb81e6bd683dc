"""PromQL's functions, by name: each takes the argument nodes and the evaluation times.

Range-vector functions are in :mod:`metricskit.query._range`; this module holds the
instant-vector ones (math, clamp, labels, sort, histogram_quantile), the scalar/vector
conversions, ``time()``, ``timestamp()``, ``absent()`` and ``absent_over_time()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from metricskit.errors import QueryError
from metricskit.query._eval import Context, evaluate, select_instant
from metricskit.query._plan import MatrixSelector, Node, Subquery, VectorSelector
from metricskit.query._range import RANGE, range_call
from metricskit.query._values import (
    BOOL,
    F64,
    I64,
    NAME,
    Labels,
    RangeVector,
    Scalar,
    StringValue,
    Value,
    Vector,
    drop_name,
    labels_get,
    merge,
    seconds,
)

__all__ = ["FUNCTIONS"]

Impl = Callable[[Context, tuple[Node, ...], I64], Value]

_MATH: dict[str, Callable[[F64], F64]] = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "ln": np.log,
    "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "sgn": np.sign,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "deg": np.degrees, "rad": np.radians,
}  # fmt: skip


def _vector(value: Value, func: str) -> Vector:
    if not isinstance(value, Vector):
        raise QueryError(f"{func}() needs an instant vector argument")
    return value


def _scalar(value: Value, func: str) -> F64:
    if not isinstance(value, Scalar):
        raise QueryError(f"{func}() needs a scalar argument here")
    return value.values


def _string(value: Value, func: str) -> str:
    if not isinstance(value, StringValue):
        raise QueryError(f"{func}() needs a string argument here")
    return value.value


def _math(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        v = _vector(evaluate(ctx, args[0], times), func)
        with np.errstate(all="ignore"):
            values = _MATH[func](v.values)
        return Vector([drop_name(la) for la in v.labels], values, v.present)

    return impl


def _range(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        extra = None
        rv_node = args[0]
        if func == "quantile_over_time":
            extra, rv_node = _scalar(evaluate(ctx, args[0], times), func), args[1]
        rv = evaluate(ctx, rv_node, times)
        if not isinstance(rv, RangeVector):
            raise QueryError(f"{func}() needs a range vector (x[5m]) argument")
        if func == "predict_linear":
            extra = _scalar(evaluate(ctx, args[1], times), func)
        return range_call(func, rv, times, extra)

    return impl


def _clamp(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        v = _vector(evaluate(ctx, args[0], times), func)
        bounds = [_scalar(evaluate(ctx, a, times), func) for a in args[1:]]
        lo = bounds[0] if func in ("clamp", "clamp_min") else np.full(times.shape, -np.inf)
        hi = bounds[-1] if func in ("clamp", "clamp_max") else np.full(times.shape, np.inf)
        with np.errstate(invalid="ignore"):
            values = np.maximum(np.minimum(v.values, hi), lo)
            present = v.present & ~(hi < lo) if func == "clamp" else v.present
        return Vector([drop_name(la) for la in v.labels], values, present)

    return impl


def _round(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    v = _vector(evaluate(ctx, args[0], times), "round")
    to = _scalar(evaluate(ctx, args[1], times), "round") if len(args) > 1 else np.ones(times.shape)
    with np.errstate(all="ignore"):
        inverse = 1.0 / to
        values = np.floor(v.values * inverse + 0.5) / inverse
    return Vector([drop_name(la) for la in v.labels], values, v.present)


def _time(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    return Scalar(seconds(times))


def _pi(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    return Scalar(np.full(times.shape, np.pi))


def _vector_fn(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    s = _scalar(evaluate(ctx, args[0], times), "vector")
    return Vector([()], s[None, :].copy(), np.ones((1, times.shape[0]), dtype=bool))


def _scalar_fn(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    v = _vector(evaluate(ctx, args[0], times), "scalar")
    one = v.present.sum(axis=0) == 1
    picked = (
        np.where(v.present, v.values, 0.0).sum(axis=0) if len(v.labels) else np.zeros(times.shape)
    )
    return Scalar(np.where(one, picked, np.nan))


def _timestamp(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    if isinstance(args[0], VectorSelector):
        v, stamps = select_instant(ctx, args[0], times)
        values = seconds(stamps)
    else:
        v = _vector(evaluate(ctx, args[0], times), "timestamp")
        values = np.broadcast_to(seconds(times), v.values.shape).copy()
    return Vector([drop_name(la) for la in v.labels], values, v.present)


def _absent_labels(node: Node) -> Labels:
    sel = node.selector if isinstance(node, MatrixSelector) else node
    if not isinstance(sel, VectorSelector):
        return ()
    found: dict[str, str] = {}
    repeated: set[str] = set()
    for m in sel.matchers:
        if m.op == "=" and m.label != NAME:
            if m.label in found:
                repeated.add(m.label)
            found[m.label] = m.value
    return tuple(sorted((k, v) for k, v in found.items() if k not in repeated))


def _absent(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        value = evaluate(ctx, args[0], times)
        if func == "absent":
            some: BOOL = np.asarray(_vector(value, func).present.any(axis=0), dtype=bool)
        else:
            if not isinstance(value, RangeVector):
                raise QueryError("absent_over_time() needs a range vector argument")
            found = range_call("present_over_time", value, times).present.any(axis=0)
            some = np.asarray(found, dtype=bool)
        if isinstance(args[0], Subquery):
            labels: Labels = ()
        else:
            labels = _absent_labels(args[0])
        return Vector([labels], np.ones((1, times.shape[0])), ~some[None, :])

    return impl


def _go_template(replacement: str) -> str:
    """Go's ``$1``/``${1}``/``$name`` expansion as a Python ``Match.expand`` template."""
    out = replacement.replace("\\", "\\\\")
    out = re.sub(r"\$\$", "\x00", out)
    out = re.sub(r"\$\{(\w+)\}", r"\\g<\1>", out)
    out = re.sub(r"\$(\w+)", r"\\g<\1>", out)
    return out.replace("\x00", "$")


def _relabel(v: Vector, new: list[Labels]) -> Vector:
    return merge(Vector(new, v.values, v.present))


def _label_replace(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    v = _vector(evaluate(ctx, args[0], times), "label_replace")
    dst, repl, src, pattern = (_string(evaluate(ctx, a, times), "label_replace") for a in args[1:])
    try:
        regex = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise QueryError(f"invalid regular expression in label_replace(): {pattern!r}") from exc
    template = _go_template(repl)
    new = []
    for labels in v.labels:
        match = regex.fullmatch(labels_get(labels, src))
        if match is None:
            new.append(labels)
            continue
        try:
            value = match.expand(template)
        except (re.error, IndexError):
            value = ""
        out = {k: x for k, x in labels if k != dst}
        if value:
            out[dst] = value
        new.append(tuple(sorted(out.items())))
    return _relabel(v, new)


def _label_join(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    v = _vector(evaluate(ctx, args[0], times), "label_join")
    dst, sep, *srcs = (_string(evaluate(ctx, a, times), "label_join") for a in args[1:])
    new = []
    for labels in v.labels:
        value = sep.join(labels_get(labels, s) for s in srcs)
        out = {k: x for k, x in labels if k != dst}
        if value:
            out[dst] = value
        new.append(tuple(sorted(out.items())))
    return _relabel(v, new)


def _sort(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        v = _vector(evaluate(ctx, args[0], times), func)
        if times.shape[0] != 1 or not v.labels:
            return v  # order only means something for an instant query
        key = np.where(np.isnan(v.values[:, 0]), np.inf, v.values[:, 0])
        order = np.argsort(-key if func == "sort_desc" else key, kind="stable")
        return Vector([v.labels[i] for i in order], v.values[order], v.present[order])

    return impl


def _histogram_quantile(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
    from metricskit.query._histogram import bucket_quantile

    q = _scalar(evaluate(ctx, args[0], times), "histogram_quantile")
    v = _vector(evaluate(ctx, args[1], times), "histogram_quantile")
    groups: dict[Labels, list[tuple[float, int]]] = {}
    for i, labels in enumerate(v.labels):
        le = labels_get(labels, "le")
        try:
            bound = float(le)
        except ValueError:
            continue
        key = tuple(kv for kv in labels if kv[0] not in (NAME, "le"))
        groups.setdefault(key, []).append((bound, i))
    out_labels, values, present = [], [], []
    for key, members in groups.items():
        members.sort()
        bounds = np.array([b for b, _ in members])
        rows = [i for _, i in members]
        counts, pres = v.values[rows], v.present[rows]
        result, ok = bucket_quantile(q, bounds, counts, pres)
        out_labels.append(key)
        values.append(result)
        present.append(ok)
    if not out_labels:
        return Vector.empty(times.shape[0])
    return Vector(out_labels, np.array(values), np.array(present))


def _calendar(values: F64, func: str) -> F64:
    """The UTC calendar field ``func`` of times in seconds (Go's ``time.Unix(int64(v), 0)``)."""
    ok = np.isfinite(values)
    secs = np.where(ok, np.trunc(np.where(ok, values, 0)), 0).astype(np.int64)
    dt = secs.astype("datetime64[s]")
    day, month, year = (dt.astype(f"datetime64[{u}]") for u in ("D", "M", "Y"))
    if func == "minute":
        field = secs // 60 % 60
    elif func == "hour":
        field = secs // 3600 % 24
    elif func == "day_of_week":
        field = (day.astype(np.int64) + 4) % 7  # 1970-01-01 was a Thursday
    elif func == "day_of_month":
        field = (day - month).astype(np.int64) + 1
    elif func == "day_of_year":
        field = (day - year).astype(np.int64) + 1
    elif func == "days_in_month":
        field = ((month + 1).astype("datetime64[D]") - month).astype(np.int64)
    elif func == "month":
        field = month.astype(np.int64) % 12 + 1
    else:
        field = year.astype(np.int64) + 1970
    out: F64 = np.where(ok, field.astype(np.float64), np.nan)
    return out


def _date(func: str) -> Impl:
    def impl(ctx: Context, args: tuple[Node, ...], times: I64) -> Value:
        if not args:
            now = seconds(times)[None, :]
            return Vector([()], _calendar(now, func), np.ones(now.shape, dtype=bool))
        v = _vector(evaluate(ctx, args[0], times), func)
        return Vector([drop_name(la) for la in v.labels], _calendar(v.values, func), v.present)

    return impl


_DATES = ("minute", "hour", "day_of_week", "day_of_month", "day_of_year", "days_in_month",
          "month", "year")  # fmt: skip


def _build() -> dict[str, Impl]:
    table: dict[str, Impl] = {name: _math(name) for name in _MATH}
    table.update({name: _range(name) for name in RANGE})
    table.update({name: _clamp(name) for name in ("clamp", "clamp_min", "clamp_max")})
    table.update({name: _sort(name) for name in ("sort", "sort_desc")})
    table.update({name: _absent(name) for name in ("absent", "absent_over_time")})
    table.update({name: _date(name) for name in _DATES})
    table.update(
        round=_round, time=_time, pi=_pi, vector=_vector_fn, scalar=_scalar_fn,
        timestamp=_timestamp, label_replace=_label_replace, label_join=_label_join,
        histogram_quantile=_histogram_quantile,
    )  # fmt: skip
    return table


FUNCTIONS: dict[str, Impl] = _build()
"""Every supported function; any other name is a QueryError at plan time."""
