"""Lossless decimal encoding of ``parquet://`` values: float64 -> (value_int, scale, value).

Per series segment, the smallest decimal scale that makes every value an exact integer
is chosen (see ``docs/storage.md``); rows no scale fits keep their float. Vectorised
with numpy: no Python loop per sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from metricskit.storage._parquet_format import MAX_SCALE, POW10

__all__ = ["IntArray", "encode_values", "repeat_into"]

_SAMPLE_ROWS = 16
IntArray = npt.NDArray[np.intp]
# (ints, exact, scale_rows, scratch) arrays for encode_values to fill in place.
_Buffers = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int8], npt.NDArray[np.float64]
]


def repeat_into(out: npt.NDArray[Any], values: list[int], lengths: list[int]) -> None:
    """``out[:] = np.repeat(values, lengths)`` without allocating (few, long segments)."""
    at = 0
    for value, n in zip(values, lengths, strict=True):
        out[at : at + n] = value
        at += n


# -- values: float64 -> (value_int, scale, value) ---------------------------------------


def _row_scales(v: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """Per value, the smallest k with an exact ``rint(v*10**k)/10**k`` (-1 if none)."""
    out = np.full(v.size, -1, dtype=np.int8)
    todo = np.arange(v.size)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(MAX_SCALE + 1):
            if todo.size == 0:
                break
            sub = v[todo]
            ints = np.rint(sub * POW10[k]).astype(np.int64)
            ok = (ints / POW10[k]).view(np.int64) == sub.view(np.int64)
            out[todo[ok]] = k
            todo = todo[~ok]
    return out


def _scaled(
    v: npt.NDArray[np.float64],
    power: float | npt.NDArray[np.float64],
    ints: npt.NDArray[np.int64] | None = None,
    exact: npt.NDArray[np.bool_] | None = None,
    work: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``rint(v * power)`` and where dividing it by ``power`` gives back ``v``'s exact bits.

    ``ints``, ``exact`` and ``work`` (scratch) may be given to be filled in place: freshly
    allocated arrays of a row group's size are page-faulted in on every use, which used to
    cost more than the arithmetic itself.
    """
    ints = np.empty(v.size, dtype=np.int64) if ints is None else ints
    exact = np.empty(v.size, dtype=np.bool_) if exact is None else exact
    work = np.empty(v.size, dtype=np.float64) if work is None else work
    with np.errstate(invalid="ignore", over="ignore"):
        if isinstance(power, float) and power == 1.0:
            # Integers (counters): truncation equals rounding wherever the check passes.
            np.copyto(ints, v, casting="unsafe")
            np.copyto(work, ints, casting="unsafe")
        else:
            np.multiply(v, power, out=work)
            np.rint(work, out=work)
            np.copyto(ints, work, casting="unsafe")
            np.divide(ints, power, out=work)
        # Compare bits, not floats: -0.0, NaN and out-of-range values must not pass.
        np.equal(work.view(np.int64), v.view(np.int64), out=exact)
    return ints, exact


def encode_values(
    v: npt.NDArray[np.float64],
    starts: IntArray,
    lengths: IntArray,
    *,
    out: _Buffers | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int8]]:
    """Choose one decimal scale per series segment and scale the values losslessly.

    Returns ``(ints, exact, scale_rows)``: rows where ``exact`` is False keep their float.
    The scale is guessed from each segment's first rows, checked on every row, and raised
    only for segments where some row needs more digits than the guess. ``out`` is
    ``(ints, exact, scale_rows, scratch)`` arrays of ``v``'s size to fill instead.
    """
    nseg = starts.size
    head_n = np.minimum(lengths, _SAMPLE_ROWS)
    head_owner = np.repeat(np.arange(nseg), head_n)
    head = (
        starts[head_owner]
        + np.arange(head_owner.size)
        - np.repeat(np.cumsum(head_n) - head_n, head_n)
    )
    seg_scale = np.zeros(nseg, dtype=np.int8)
    np.maximum.at(seg_scale, head_owner, _row_scales(v[head]))
    ints, exact, scale_rows, work = out or (None, None, None, None)
    if nseg and seg_scale.min() == seg_scale.max():
        # The common case (one kind of series in the row group): a scalar multiplier.
        ints, exact = _scaled(v, float(POW10[seg_scale[0]]), ints, exact, work)
    else:
        ints, exact = _scaled(v, np.repeat(POW10[seg_scale], lengths), ints, exact, work)
    if scale_rows is None:
        scale_rows = np.repeat(seg_scale, lengths)
    else:
        repeat_into(scale_rows, seg_scale.tolist(), lengths.tolist())
    if bool(exact.all()):
        return ints, exact, scale_rows
    misses = np.flatnonzero(~exact)
    owner = np.repeat(np.arange(nseg), lengths)
    needed = seg_scale.copy()
    np.maximum.at(needed, owner[misses], _row_scales(v[misses]))
    raised = needed > seg_scale
    if raised.any():
        rows = np.flatnonzero(raised[owner])
        scale_rows[rows] = needed[owner[rows]]
        ints[rows], exact[rows] = _scaled(v[rows], POW10[scale_rows[rows]])
    return ints, exact, scale_rows
