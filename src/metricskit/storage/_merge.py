"""The "last write wins" merge every backend applies to a series' chunks.

Built-in and plugin backends store a series as chunks in write order (a flushed buffer,
a file part, a server's answer) and must show readers one sorted column with one value per
timestamp: the one written last. Plugins import it as ``metricskit.storage.merge_last_wins``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["merge_last_wins"]

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]


def merge_last_wins(chunks: Sequence[tuple[Int64s, Float64s]]) -> tuple[Int64s, Float64s]:
    """Merge ``(timestamps, values)`` chunks, oldest first, into sorted unique timestamps.

    Where a timestamp repeats, the value from the latest chunk (and within a chunk, the
    latest position) wins. A single chunk that is already strictly increasing comes back
    as is, without a copy.
    """
    if not chunks:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if len(chunks) == 1:
        ts, vs = chunks[0]
    else:
        ts = np.concatenate([c[0] for c in chunks])
        vs = np.concatenate([c[1] for c in chunks])
    if ts.size > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        order = np.argsort(ts, kind="stable")  # stable: equal timestamps stay in write order
        ts, vs = ts[order], vs[order]
        keep = np.empty(ts.size, dtype=bool)
        keep[-1] = True
        np.not_equal(ts[1:], ts[:-1], out=keep[:-1])
        ts, vs = ts[keep], vs[keep]
    return ts, vs
