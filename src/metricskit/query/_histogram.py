"""``histogram_quantile`` over classic ``_bucket`` series (Prometheus' ``bucketQuantile``).

Vectorised over time: the evaluation times are grouped by which buckets are present (on
regular data, one group), and each group is one pass of numpy over buckets x times, with
the same floating-point operations in the same order as Prometheus' per-time code.
"""

from __future__ import annotations

import numpy as np

from metricskit.query._values import BOOL, F64

__all__ = ["bucket_quantile"]


def _quantiles(q: F64, bounds: F64, counts: F64) -> F64:
    """The q-quantile at each column of ``counts`` (buckets x times, all present)."""
    out: F64 = np.full(q.shape, np.nan)
    if bounds.size == 0 or bounds[-1] != np.inf:
        return out
    # coalesce equal bounds, then force the counts monotonic, as Prometheus does
    uniq, inverse = np.unique(bounds, return_inverse=True)
    if uniq.shape[0] == bounds.shape[0]:
        merged = counts.copy()
    else:
        merged = np.zeros((uniq.shape[0], counts.shape[1]))
        np.add.at(merged, inverse, counts)
    merged = np.maximum.accumulate(merged, axis=0)
    if merged.shape[0] < 2:
        return out
    observations = merged[-1]
    rank = q * observations
    with np.errstate(invalid="ignore"):
        # searchsorted(merged[:-1], rank, "left") per column: the counts are monotonic
        b = np.sum(merged[:-1] < rank, axis=0)
    cols = np.arange(q.shape[0])
    prev = np.maximum(b - 1, 0)
    below = np.where(b > 0, merged[prev, cols], 0.0)
    start = np.where(b > 0, uniq[prev], 0.0)
    end = uniq[np.minimum(b, uniq.shape[0] - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        count = np.where(b > 0, merged[b, cols] - below, merged[b, cols])
        rank = np.where(b > 0, rank - below, rank)
        out = start + (end - start) * (rank / count)
    out = np.where(b == uniq.shape[0] - 1, uniq[-2], out)  # the highest finite bound
    out = np.where((b == 0) & (uniq[0] <= 0), uniq[0], out)
    result: F64 = np.where((observations == 0) | np.isnan(observations), np.nan, out)
    return result


def bucket_quantile(q: F64, bounds: F64, counts: F64, present: BOOL) -> tuple[F64, BOOL]:
    """The q-quantile of one histogram at each time: (values, present).

    ``bounds`` are the buckets' ``le`` (sorted), ``counts`` (buckets x times) their
    cumulative counts. A time with any bucket present has a value (NaN when the buckets
    do not end in ``+Inf``).
    """
    ok: BOOL = np.asarray(present.any(axis=0), dtype=bool)
    out: F64 = np.full(ok.shape, np.nan)
    columns = np.flatnonzero(ok)
    if not columns.size:
        return out, ok
    if present[:, columns].all():  # every bucket at every time: the usual case
        out[columns] = _quantiles(q[columns], bounds, counts[:, columns])
    else:
        patterns, which = np.unique(present[:, columns].T, axis=0, return_inverse=True)
        for p, have in enumerate(patterns):
            cols = columns[which.reshape(-1) == p]
            out[cols] = _quantiles(q[cols], bounds[have], counts[np.ix_(have, cols)])
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(q), np.nan, out)
        out = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, out))
    result: F64 = np.where(ok, out, np.nan)
    return result, ok
