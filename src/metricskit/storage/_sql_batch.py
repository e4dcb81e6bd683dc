"""Turning a write batch into per-series runs for the SQL backend (numpy only).

A run (:data:`Segment`) is ``(series_id, ts, values)`` with sorted unique timestamps, the
last write of a repeated (series, timestamp) kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from metricskit.model import Series

__all__ = ["Segment", "segments", "split_odd"]

Segment = tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]


def _ascending(parts: Sequence[Series]) -> bool:
    """Whether every part's timestamps strictly increase (many small parts: one pass)."""
    if len(parts) < 64 or sum(len(s) for s in parts) > 256 * len(parts):
        return all(bool(np.all(s.timestamps[1:] > s.timestamps[:-1])) for s in parts)
    ts = np.concatenate([s.timestamps for s in parts])
    rising = ts[1:] > ts[:-1]
    rising[np.cumsum([len(s) for s in parts[:-1]]) - 1] = True  # where one part meets the next
    return bool(rising.all())


def segments(ids: list[int], parts: Sequence[Series]) -> list[Segment]:
    """``(series_id, ts, values)`` per series: sorted, unique timestamps, last write wins.

    The usual batch (each series once, timestamps ascending) passes through untouched;
    anything else is concatenated and sorted.
    """
    if len(set(ids)) == len(ids) and _ascending(parts):
        return [
            (
                series_id,
                s.timestamps.astype(np.int64, copy=False),
                s.values.astype(np.float64, copy=False),
            )
            for series_id, s in zip(ids, parts, strict=True)
        ]
    sid = np.repeat(np.array(ids, dtype=np.int64), [len(s) for s in parts])
    ts = np.concatenate([s.timestamps for s in parts]).astype(np.int64, copy=False)
    values = np.concatenate([s.values for s in parts]).astype(np.float64, copy=False)
    sid, ts, values = _last_wins(sid, ts, values)
    starts = np.concatenate(([0], np.flatnonzero(sid[1:] != sid[:-1]) + 1))
    ends = np.append(starts[1:], sid.size)
    return [
        (int(sid[lo]), ts[lo:hi], values[lo:hi])
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def split_odd(segments: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """Segments whose values a head row keeps exactly, and the others.

    A head row holds a SQL double: SQLite keeps -0.0 as 0 and NaN as NULL (no payload),
    MariaDB refuses +-inf. Blocks keep every bit, so such values always go there.
    """
    values = np.concatenate([seg[2] for seg in segments])
    odd = ~np.isfinite(values) | ((values == 0) & np.signbit(values))
    if not odd.any():
        return segments, []
    starts = np.cumsum([0] + [seg[2].size for seg in segments[:-1]])
    flags = np.logical_or.reduceat(odd, starts).tolist()
    plain = [seg for seg, bad in zip(segments, flags, strict=True) if not bad]
    return plain, [seg for seg, bad in zip(segments, flags, strict=True) if bad]


def _last_wins(
    sid: np.ndarray[Any, Any], ts: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Sort by (series, ts) and keep the last occurrence of each pair.

    lexsort is stable, so equal pairs stay in arrival order. Sorting also gives the
    database B-tree locality: each series' samples go in as one ascending run.
    """
    order = np.lexsort((ts, sid))
    sid, ts, values = sid[order], ts[order], values[order]
    if len(sid) > 1:
        keep = np.empty(len(sid), dtype=bool)
        keep[-1] = True
        np.logical_or(sid[1:] != sid[:-1], ts[1:] != ts[:-1], out=keep[:-1])
        if not keep.all():
            sid, ts, values = sid[keep], ts[keep], values[keep]
    return sid, ts, values
