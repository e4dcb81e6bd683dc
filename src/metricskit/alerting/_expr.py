"""Expression rules' evaluation: a PromQL plan at one time as (labels, value) samples.

Prometheus' rule manager runs an instant query per rule; a scalar result is one sample
without labels, a string or range vector is an error of the rule (never of the others).
"""

from __future__ import annotations

import numpy as np

from metricskit.errors import QueryError
from metricskit.query import evaluate_at
from metricskit.query._plan import Node
from metricskit.query._values import Labels, Scalar, Vector, merge
from metricskit.store import Store

__all__ = ["instant_samples"]


def instant_samples(store: Store, node: Node, t: int) -> list[tuple[Labels, float]]:
    """The result of ``node`` at ``t``: each series' labels (``__name__`` kept) and value."""
    value = evaluate_at(store.backend, node, np.array([t], dtype=np.int64), t, t)
    if isinstance(value, Scalar):
        return [((), float(value.values[0]))]
    if not isinstance(value, Vector):
        raise QueryError("a rule's expression must give an instant vector or a scalar")
    value = merge(value)
    return [
        (labels, float(vals[0]))
        for labels, vals, pres in zip(value.labels, value.values, value.present, strict=True)
        if pres[0]
    ]
