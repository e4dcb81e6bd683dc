"""Binary operators: arithmetic, comparisons (with ``bool``), ``and``/``or``/``unless``.

Vector matching follows Prometheus: a signature of the ``on`` labels (or of all labels
but ``__name__`` and the ``ignoring`` ones); one-to-one unless ``group_left``/``group_right``
names the "many" side. Arithmetic and ``bool`` comparisons drop ``__name__``; a filtering
comparison keeps the left-hand sample (the vector's, against a scalar).
"""

from __future__ import annotations

import numpy as np

from metricskit.errors import QueryError
from metricskit.query._eval import Context, evaluate
from metricskit.query._plan import Binary
from metricskit.query._values import (
    BOOL,
    F64,
    I64,
    NAME,
    Labels,
    Scalar,
    Vector,
    drop_name,
    labels_get,
    merge,
)

__all__ = ["binary"]

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
# Prometheus drops the metric name for these only: atan2 keeps it, as comparisons do
_DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})


def apply(op: str, a: F64, b: F64) -> F64:
    """``a op b`` elementwise, with Go's float semantics (``%`` is ``math.Mod``)."""
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        result = {
            "==": np.equal, "!=": np.not_equal, ">": np.greater,
            "<": np.less, ">=": np.greater_equal, "<=": np.less_equal,
        }[op](a, b)  # fmt: skip
        return result.astype(np.float64)


def _signature(labels: Labels, node: Binary) -> tuple[str, ...] | Labels:
    if node.on:
        return tuple(labels_get(labels, k) for k in sorted(node.matching))
    skip = {NAME, *node.matching}
    return tuple(kv for kv in labels if kv[0] not in skip)


def _groups(labels: list[Labels], node: Binary) -> dict[object, list[int]]:
    out: dict[object, list[int]] = {}
    for i, la in enumerate(labels):
        out.setdefault(_signature(la, node), []).append(i)
    return out


def _scalar_vector(node: Binary, lhs: Scalar | Vector, rhs: Scalar | Vector) -> Scalar | Vector:
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return Scalar(apply(node.op, lhs.values, rhs.values))
    vector = lhs if isinstance(lhs, Vector) else rhs
    assert isinstance(vector, Vector)
    a = lhs.values if isinstance(lhs, Vector) else lhs.values[None, :]
    b = rhs.values if isinstance(rhs, Vector) else rhs.values[None, :]
    result = apply(node.op, a, b)
    present = vector.present
    labels = vector.labels
    if node.op in COMPARISONS and not node.return_bool:
        present = present & (result != 0)
        result = vector.values
    if node.op in _DROPS_NAME or node.return_bool:
        labels = [drop_name(la) for la in labels]
    return Vector(list(labels), np.broadcast_to(result, present.shape).copy(), present)


def _set_op(node: Binary, lhs: Vector, rhs: Vector) -> Vector:
    def any_present(side: Vector, sig: object, groups: dict[object, list[int]]) -> BOOL:
        rows = groups.get(sig)
        if not rows:
            return np.zeros(side.present.shape[1], dtype=bool)
        found: BOOL = np.asarray(side.present[rows].any(axis=0), dtype=bool)
        return found

    right = _groups(rhs.labels, node)
    if node.op in ("and", "unless"):
        present = lhs.present.copy()
        for i, la in enumerate(lhs.labels):
            hit = any_present(rhs, _signature(la, node), right)
            present[i] &= hit if node.op == "and" else ~hit
        return Vector(list(lhs.labels), lhs.values, present)
    left = _groups(lhs.labels, node)
    extra = rhs.present.copy()
    for i, la in enumerate(rhs.labels):
        extra[i] &= ~any_present(lhs, _signature(la, node), left)
    return merge(
        Vector(
            [*lhs.labels, *rhs.labels],
            np.concatenate([lhs.values, rhs.values]),
            np.concatenate([lhs.present, extra]),
        )
    )


def _result_labels(many: Labels, one: Labels, node: Binary) -> Labels:
    out = dict(many)
    if node.op in _DROPS_NAME or node.return_bool:
        out.pop(NAME, None)
    if node.card == "one-to-one":
        if node.on:
            out = {k: v for k, v in out.items() if k in node.matching}
        else:
            for k in node.matching:
                out.pop(k, None)
    for k in node.include:
        value = labels_get(one, k)
        if value:
            out[k] = value
        else:
            out.pop(k, None)
    return tuple(sorted(out.items()))


def _vector_vector(node: Binary, lhs: Vector, rhs: Vector) -> Vector:
    swap = node.card == "one-to-many"
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    one_groups = _groups(one.labels, node)
    labels: list[Labels] = []
    values: list[F64] = []
    present: list[BOOL] = []
    many_groups = _groups(many.labels, node)
    for sig, m_rows in many_groups.items():
        o_rows = one_groups.get(sig)
        if not o_rows:
            continue
        if len(o_rows) > 1 and (one.present[o_rows].sum(axis=0) > 1).any():
            raise QueryError(
                "many-to-many matching not allowed: matching labels must be unique on one side"
            )
        if node.card == "one-to-one" and len(m_rows) > 1:
            hit = one.present[o_rows].any(axis=0)
            if ((many.present[m_rows].sum(axis=0) > 1) & hit).any():
                raise QueryError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
        for m in m_rows:
            for o in o_rows:
                both = many.present[m] & one.present[o]
                if not both.any():
                    continue
                a, b = (one.values[o], many.values[m]) if swap else (many.values[m], one.values[o])
                result = apply(node.op, a, b)
                if node.op in COMPARISONS and not node.return_bool:
                    both = both & (result != 0)
                    result = a
                labels.append(_result_labels(many.labels[m], one.labels[o], node))
                values.append(result)
                present.append(both)
    if not labels:
        return Vector.empty(lhs.present.shape[1])
    out = Vector(labels, np.array(values), np.array(present))
    try:
        return merge(out)
    except QueryError as exc:
        raise QueryError(
            f"{exc}: grouping labels must ensure unique matches (operator {node.op})"
        ) from None


def binary(ctx: Context, node: Binary, times: I64) -> Scalar | Vector:
    """Evaluate a binary operation at every time of ``times``."""
    lhs = evaluate(ctx, node.lhs, times)
    rhs = evaluate(ctx, node.rhs, times)
    if not isinstance(lhs, Scalar | Vector) or not isinstance(rhs, Scalar | Vector):
        raise QueryError(f"operator {node.op} needs scalars or instant vectors on both sides")
    if node.op in ("and", "or", "unless"):
        if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
            raise QueryError(f"set operator {node.op} needs instant vectors on both sides")
        return _set_op(node, lhs, rhs)
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        return _vector_vector(node, lhs, rhs)
    return _scalar_vector(node, lhs, rhs)
