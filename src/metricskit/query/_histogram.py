"""``histogram_quantile`` over classic ``_bucket`` series (Prometheus' ``bucketQuantile``)."""

from __future__ import annotations

import numpy as np

from metricskit.query._values import BOOL, F64

__all__ = ["bucket_quantile"]


def _one(q: float, bounds: F64, counts: F64) -> float:
    if np.isnan(q):
        return float("nan")
    if q < 0:
        return float("-inf")
    if q > 1:
        return float("inf")
    if bounds.size == 0 or bounds[-1] != np.inf:
        return float("nan")
    # coalesce equal bounds, then force the counts monotonic, as Prometheus does
    uniq, inverse = np.unique(bounds, return_inverse=True)
    merged = np.zeros(uniq.shape[0])
    np.add.at(merged, inverse, counts)
    merged = np.maximum.accumulate(merged)
    if merged.shape[0] < 2:
        return float("nan")
    observations = float(merged[-1])
    if observations == 0 or np.isnan(observations):
        return float("nan")
    rank = q * observations
    b = int(np.searchsorted(merged[:-1], rank, "left"))
    if b == merged.shape[0] - 1:
        return float(uniq[-2])  # the highest finite bound
    if b == 0 and float(uniq[0]) <= 0:
        return float(uniq[0])
    start, end, count = 0.0, float(uniq[b]), float(merged[b])
    if b > 0:
        start = float(uniq[b - 1])
        count -= float(merged[b - 1])
        rank -= float(merged[b - 1])
    return start + (end - start) * (rank / count)


def bucket_quantile(q: F64, bounds: F64, counts: F64, present: BOOL) -> tuple[F64, BOOL]:
    """The q-quantile of one histogram at each time: (values, present).

    ``bounds`` are the buckets' ``le`` (sorted), ``counts`` (buckets x times) their
    cumulative counts. A time with any bucket present has a value (NaN when the buckets
    do not end in ``+Inf``).
    """
    ok: BOOL = np.asarray(present.any(axis=0), dtype=bool)
    out: F64 = np.full(ok.shape, np.nan)
    for j in np.flatnonzero(ok):
        have = present[:, j]
        out[j] = _one(float(q[j]), bounds[have], counts[have, j])
    return out, ok
