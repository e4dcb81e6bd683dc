"""PromQL on any store: :func:`instant_query` and :func:`range_query`.

``Store.promql(expr, time=None)`` and ``Store.promql_range(expr, start, end, step)`` call
these. The expression is parsed by ``promql-parser`` (the Rust parser Prometheus-compatible
tools use), turned into a checked plan (:func:`parse`), its selectors are matched against
the store's keys and each matched series is read once, then the plan is evaluated at every
step at once on numpy. Semantics are Prometheus 3's; docs/promql.md lists what is
supported. Anything else is a :class:`~metricskit.errors.QueryError` naming the construct
and its position, never a wrong answer.

The result is a tidy pandas frame: ``timestamp`` (UTC), one column per label
(``__name__`` for the metric name), ``value``; ``frame.attrs["series"]`` holds the same
result as a list of :class:`~metricskit.model.Series` for code that wants numpy.
"""

from __future__ import annotations

import time as _time_mod
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from metricskit._time import TimeLike, parse_duration, to_ns
from metricskit.errors import InvalidArgumentError, QueryError
from metricskit.model import Series, SeriesKey, Tags
from metricskit.query._eval import Context, evaluate, spans
from metricskit.query._functions import FUNCTIONS
from metricskit.query._plan import Node, plan
from metricskit.query._select import fetch
from metricskit.query._values import I64, NAME, Scalar, Value, Vector, merge
from metricskit.query.range_functions import eval_times
from metricskit.storage.base import StorageBackend

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_STEPS",
    "QueryError",
    "backend_of",
    "evaluate_at",
    "instant_query",
    "parse",
    "range_query",
]

MAX_STEPS = 11_000
"""Prometheus' limit on the points of one range query."""

_NAMES = frozenset(FUNCTIONS)


def parse(expr: str) -> Node:
    """Parse and check ``expr``: the plan :func:`evaluate_at` runs (QueryError if unsupported)."""
    return plan(expr, _NAMES)


def evaluate_at(
    backend: StorageBackend, node: Node, times: I64, start_ns: int, end_ns: int
) -> Value:
    """Evaluate a plan at ``times`` (int64 ns), reading each matched series once."""
    needed: dict[Any, tuple[int, int]] = {}
    if times.size:
        spans(node, int(times.min()), int(times.max()), start_ns, end_ns, needed)
    ctx = Context(fetch(backend, needed), start_ns, end_ns, FUNCTIONS)
    return evaluate(ctx, node, times)


def backend_of(store: Any) -> StorageBackend:
    """The storage backend under a ``Store`` (or the backend itself)."""
    backend = getattr(store, "backend", store)
    if not isinstance(backend, StorageBackend):
        raise InvalidArgumentError(
            f"expected a Store or a StorageBackend, not {type(store).__name__}"
        )
    return backend


def instant_query(store: Any, expr: str, time: TimeLike | None = None) -> pd.DataFrame:
    """Evaluate ``expr`` at one time (default: now); a frame with one row per series."""
    node = parse(expr)
    at = _time_mod.time_ns() if time is None else to_ns(time)
    times = np.array([at], dtype=np.int64)
    return _frame(evaluate_at(backend_of(store), node, times, at, at), times)


def range_query(
    store: Any, expr: str, start: TimeLike, end: TimeLike, step: str | float
) -> pd.DataFrame:
    """Evaluate ``expr`` at ``start, start + step, ... <= end``; a frame of every point."""
    node = parse(expr)
    start_ns, end_ns, step_ns = to_ns(start), to_ns(end), parse_duration(step)
    if step_ns <= 0:
        raise QueryError(f"step must be positive, got {step!r}")
    if end_ns < start_ns:
        raise QueryError(f"end ({end!r}) is before start ({start!r})")
    if (end_ns - start_ns) // step_ns + 1 > MAX_STEPS:
        raise QueryError(
            f"a range query may have at most {MAX_STEPS} steps; use a larger step than {step!r}"
        )
    times = eval_times(start_ns, end_ns, step_ns)
    return _frame(evaluate_at(backend_of(store), node, times, start_ns, end_ns), times)


def _frame(value: Value, times: I64) -> pd.DataFrame:
    import pandas as pd

    if isinstance(value, Scalar):
        value = Vector([()], value.values[None, :], np.ones((1, times.shape[0]), dtype=bool))
    if isinstance(value, Vector):
        # functions and operators that drop __name__ can leave rows with one label set
        value = merge(value)
    else:
        kind = "a range vector" if hasattr(value, "range_ns") else "a string"
        raise QueryError(f"the expression evaluates to {kind}; query an instant vector or scalar")
    series: list[Series] = []
    for labels, vals, pres in zip(value.labels, value.values, value.present, strict=True):
        if not pres.any():
            continue
        name = dict(labels).get(NAME, "")
        tags = Tags._trusted(tuple(kv for kv in labels if kv[0] != NAME))
        series.append(Series(SeriesKey(name, tags), times[pres].copy(), vals[pres].copy()))
    keys = sorted({k for s in series for k in s.tags})
    if any(s.name for s in series):
        keys.insert(0, NAME)
    lengths = [len(s) for s in series]
    columns: dict[str, Any] = {
        "timestamp": pd.DatetimeIndex(
            np.concatenate([s.timestamps for s in series]) if series else np.empty(0, np.int64),
            tz="UTC",
        )
    }
    for key in keys:
        per = [(s.name if key == NAME else s.tags.get(key)) or None for s in series]
        columns[key] = np.repeat(np.array(per, dtype=object), lengths) if series else []
    columns["value"] = np.concatenate([s.values for s in series]) if series else np.empty(0)
    frame = pd.DataFrame(columns)
    frame.attrs["series"] = series
    return cast("pd.DataFrame", frame)
