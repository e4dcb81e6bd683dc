"""The windowed-series type and the segment primitives both statistics modules share.

:mod:`metricskit.query.aggregate` (tumbling windows, ``window_stats``, quantiles) and
:mod:`metricskit.query.range_functions` (sliding windows, range functions) both build on
these; keeping them here lets imports flow one way (``_windows`` <- ``aggregate`` <-
``range_functions``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from metricskit.errors import QueryError

__all__ = [
    "F64",
    "I64",
    "IDX",
    "Windows",
    "contiguous",
    "positive_ns",
    "reduce_segments",
    "series_columns",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
IDX = npt.NDArray[np.intp]
_T = TypeVar("_T", bound=np.generic)


@dataclass(frozen=True)
class Windows:
    """A series cut into windows: window ``i`` is ``values[starts[i]:ends[i]]``.

    ``times`` labels each window (its start for tumbling windows, its evaluation time for
    sliding ones). Sliding windows may overlap, so ``starts``/``ends`` need not tile the
    arrays. ``values`` may still hold NaN unless ``nan_free``: :meth:`without_nan` drops
    them, and every statistic calls it (sums find out for free whether it is needed).
    """

    times: I64
    starts: IDX
    ends: IDX
    timestamps: I64
    values: F64
    nan_free: bool = False

    @property
    def counts(self) -> IDX:
        """The number of samples in each window (NaN included until :meth:`without_nan`)."""
        counts: IDX = self.ends - self.starts
        return counts

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def without_nan(self) -> Windows:
        """The same windows over the series without its NaN samples."""
        if self.nan_free:
            return self
        keep = ~np.isnan(self.values)
        if keep.all():
            return replace(self, nan_free=True)
        kept_before = np.zeros(keep.shape[0] + 1, dtype=np.intp)
        np.cumsum(keep, out=kept_before[1:])
        return Windows(
            self.times,
            kept_before[self.starts],
            kept_before[self.ends],
            self.timestamps[keep],
            self.values[keep],
            nan_free=True,
        )


def series_columns(timestamps: npt.ArrayLike, values: npt.ArrayLike) -> tuple[I64, F64]:
    """The series as (int64 ns, float64) 1-d arrays of one length, or :class:`QueryError`."""
    ts = np.asarray(timestamps, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    if ts.shape != vals.shape or ts.ndim != 1:
        raise QueryError(f"timestamps {ts.shape} and values {vals.shape} must be 1-d, one length")
    return ts, vals


def positive_ns(ns: int, what: str) -> int:
    """``ns`` as an int if positive, else a :class:`QueryError` naming ``what``."""
    if ns <= 0:
        raise QueryError(f"{what} must be positive, got {ns} ns")
    return int(ns)


def contiguous(values: npt.NDArray[_T], starts: IDX, ends: IDX) -> tuple[npt.NDArray[_T], IDX]:
    """Lay the windows' samples end to end: returns ``(flat, offsets)``.

    Tumbling windows already tile the array, so that is a view; overlapping or gapped
    windows are gathered (a copy whose size is the sum of the window lengths).
    """
    counts = ends - starts
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    if counts.shape[0] == 0:
        return values[:0], offsets
    if np.array_equal(starts[1:], ends[:-1]):
        base = int(starts[0])
        return values[base : int(ends[-1])], offsets
    total = int(offsets[-1])
    # index of each gathered sample = its window's start + its position in the window
    idx = np.arange(total, dtype=np.intp) + np.repeat(starts - offsets[:-1], counts)
    return values[idx], offsets


def reduce_segments(ufunc: np.ufunc, flat: F64, offsets: IDX) -> F64:
    """``ufunc.reduceat`` over each segment ``flat[offsets[i]:offsets[i+1]]``; NaN if empty."""
    counts = np.diff(offsets)
    out = np.full(counts.shape[0], np.nan)
    nonempty = counts > 0
    if nonempty.any():
        # Empty segments take no room, so reducing from each non-empty start to the next
        # one covers exactly that segment.
        with np.errstate(invalid="ignore"):  # +Inf + -Inf is NaN, as in Prometheus
            out[nonempty] = ufunc.reduceat(flat, offsets[:-1][nonempty])
    return out
