"""A lossless, vectorised codec for one block of samples (sorted unique int64 ns, float64).

Used by the SQL backend's block layout (:mod:`metricskit.storage.sql`); any backend may use
it. Everything is numpy passes plus one ``zlib`` call: no Python loop per sample, and only
the standard library and numpy, so the default store needs no extra dependency.

Layout of an encoded block (little-endian)::

    header   <BBBBIqQq  version, value kind, timestamp width, value width, n, t0, d0,
             ts_base; then for kind DECIMAL: <bqI  scale, value base, exceptions
    body     zlib( timestamp stream | value stream | exception indices (u4) | exception
             values (f8) )

Timestamps: the first timestamp ``t0`` and first delta ``d0`` (header), then the stream of
deltas of deltas (all modulo 2**64, so any int64 works), minus its minimum ``ts_base``
(frame of reference) and stored in the fewest bytes that hold the largest (0, 1, 2, 4 or
8), byte planes apart ("byte-stream split": all low bytes, then the next bytes, ...). A
regular scrape interval gives a stream of zeros, which takes no bytes at all.

Values, kind DECIMAL: when ``v * 10**scale`` is an integer whose division by ``10**scale``
gives back the very same bits (the Parquet backend's idea), the integers' first deltas go
through the same frame-of-reference + byte-split stream: 2-decimal gauges and integer
counters shrink to about one byte. Values that fail the check (NaN, -0.0, +-inf, odd
floats) are kept as exceptions: their positions and raw bits. Kind XOR: when too many
values fail, each value's bits XOR the previous value's, byte-split (Gorilla's idea
without the bit packing; zlib does the entropy coding).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from metricskit.errors import CorruptDataError

__all__ = ["BLOCK_VERSION", "decode_block", "encode_block", "merge_last_wins"]

BLOCK_VERSION = 1
_DECIMAL, _XOR = 0, 1
_HEADER = struct.Struct("<BBBBIqQq")
_DECIMAL_HEADER = struct.Struct("<bqI")
_MAX_SCALE = 9
_POW10 = 10.0 ** np.arange(_MAX_SCALE + 1, dtype=np.float64)
_EXACT = 2.0**53  # integers beyond this are not all representable as float64
_LEVEL = 6  # zlib level: 1 is ~10% bigger and barely faster on these streams
_PROBE = 64  # values tried per scale before checking a whole block
_MASK = 2**64 - 1

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]


def _width(top: int) -> int:
    for width in (0, 1, 2, 4):
        if top < 1 << (8 * width):
            return width
    return 8


def _split(stream: U64) -> tuple[int, int, bytes]:
    """Frame of reference + byte-stream split of a uint64 stream: (base, width, bytes)."""
    if not stream.size:
        return 0, 0, b""
    base = int(stream.view(np.int64).min())
    shifted = stream - np.uint64(base & _MASK)  # wraps: fits in [0, 2**64)
    width = _width(int(shifted.max()))
    planes = shifted.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :width]
    return int(base), width, planes.T.tobytes()


def _join(data: memoryview | bytes, n: int, width: int, base: int) -> U64:
    """Inverse of :func:`_split`."""
    if not width:  # every element equals the base (a regular interval's timestamps)
        return np.full(n, np.uint64(base & _MASK), dtype=np.uint64)
    planes = np.frombuffer(data, dtype=np.uint8, count=n * width).reshape(width, n)
    full = np.zeros((n, 8), dtype=np.uint8)
    full[:, :width] = planes.T
    out: U64 = full.view("<u8").reshape(n).astype(np.uint64, copy=False)
    out += np.uint64(base & _MASK)
    return out


def _deltas(x: U64, order: int) -> U64:
    """``order`` rounds of first differences (modulo 2**64), first element kept."""
    for _ in range(order):
        out = x.copy()
        np.subtract(x[1:], x[:-1], out=out[1:])
        x = out
    return x


def _undelta(x: U64, order: int) -> U64:
    for _ in range(order):
        x = np.cumsum(x, dtype=np.uint64)
    return x


def _decimal(values: Float64Array) -> tuple[int, Int64Array, npt.NDArray[np.bool_]] | None:
    """(scale, integers, exact mask) for the smallest scale that fits most values."""
    probe = values[:_PROBE]
    for scale in range(_MAX_SCALE + 1):
        ints, exact = _as_ints(probe, scale)
        if exact.mean() < 0.75:
            continue
        ints, exact = _as_ints(values, scale)
        if exact.mean() >= 0.9:
            return scale, ints, exact
    return None


def _as_ints(values: Float64Array, scale: int) -> tuple[Int64Array, npt.NDArray[np.bool_]]:
    power = _POW10[scale]
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(values * power)
        exact = np.abs(scaled) < _EXACT
        ints = np.where(exact, scaled, 0.0).astype(np.int64)
        # Bit-exact, so -0.0 (which comes back as +0.0) and NaN are exceptions.
        exact &= (ints / power).view(np.int64) == values.view(np.int64)
    return ints, exact


def encode_block(ts: Int64Array, values: Float64Array) -> bytes:
    """Encode ``n >= 1`` samples, timestamps sorted and unique."""
    n = int(ts.size)
    t0 = int(ts[0])
    relative = ts.view(np.uint64)[1:] - np.uint64(t0 & _MASK)
    # [first delta, deltas of deltas...]: the first delta goes in the header, so a regular
    # interval leaves a stream of zeros, which takes no bytes at all.
    stream = _deltas(relative, 2)
    d0 = int(stream[0]) if stream.size else 0
    ts_base, ts_width, ts_bytes = _split(stream[1:])
    found = _decimal(values)
    if found is not None:
        scale, ints, exact = found
        misses = np.flatnonzero(~exact)
        if misses.size:
            # A miss repeats the previous exact integer, so it costs a zero delta.
            fill = np.where(exact, np.arange(n), 0)
            np.maximum.accumulate(fill, out=fill)
            ints = ints[fill]
        v_base, v_width, v_bytes = _split(_deltas(ints.view(np.uint64), 1))
        head = _HEADER.pack(BLOCK_VERSION, _DECIMAL, ts_width, v_width, n, t0, d0, ts_base)
        head += _DECIMAL_HEADER.pack(scale, v_base, misses.size)
        tail = misses.astype("<u4").tobytes() + values[misses].astype("<f8").tobytes()
    else:
        bits = values.view(np.uint64)
        xored = bits ^ np.concatenate(([np.uint64(0)], bits[:-1]))
        planes = xored.astype("<u8").view(np.uint8).reshape(-1, 8).T
        head = _HEADER.pack(BLOCK_VERSION, _XOR, ts_width, 8, n, t0, d0, ts_base)
        v_bytes, tail = planes.tobytes(), b""
    return head + zlib.compress(ts_bytes + v_bytes + tail, _LEVEL)


def decode_block(blob: bytes | memoryview) -> tuple[Int64Array, Float64Array]:
    """Inverse of :func:`encode_block`; a damaged blob raises ``CorruptDataError``."""
    try:
        return _decode(memoryview(blob))
    except (struct.error, zlib.error, ValueError, IndexError) as exc:
        raise CorruptDataError(f"damaged sample block ({exc})") from exc


def _decode(blob: memoryview) -> tuple[Int64Array, Float64Array]:
    version, kind, ts_width, v_width, n, t0, d0, ts_base = _HEADER.unpack_from(blob)
    if version != BLOCK_VERSION or kind not in (_DECIMAL, _XOR):
        raise ValueError(f"unknown block version {version} / kind {kind}")
    at = _HEADER.size
    extra: Any = None
    if kind == _DECIMAL:
        extra = _DECIMAL_HEADER.unpack_from(blob, at)
        at += _DECIMAL_HEADER.size
    body = memoryview(zlib.decompress(blob[at:]))
    ts = np.empty(n, dtype=np.int64)
    ts[0] = t0
    ts_len = max(n - 2, 0) * ts_width
    if n > 1:
        stream = np.empty(n - 1, dtype=np.uint64)
        stream[0] = d0
        stream[1:] = _join(body[:ts_len], n - 2, ts_width, ts_base)
        ts[1:] = (_undelta(stream, 2) + np.uint64(t0 & _MASK)).view(np.int64)
    v_len = n * v_width
    v_data = body[ts_len : ts_len + v_len]
    if kind == _XOR:
        xored = _join(v_data, n, 8, 0)
        values: Float64Array = np.bitwise_xor.accumulate(xored).view(np.float64)
        return ts, values
    scale, v_base, misses = extra
    ints = _undelta(_join(v_data, n, v_width, v_base), 1).view(np.int64)
    values = ints / _POW10[scale]
    if misses:
        at = ts_len + v_len
        where = np.frombuffer(body, dtype="<u4", count=misses, offset=at)
        raw = np.frombuffer(body, dtype="<f8", count=misses, offset=at + 4 * misses)
        values[where] = raw
    if ts.size != n or values.size != n:
        raise ValueError("block length mismatch")
    return ts, values


def merge_last_wins(
    old: tuple[Int64Array, Float64Array], new: tuple[Int64Array, Float64Array]
) -> tuple[Int64Array, Float64Array]:
    """Merge two sorted, unique ``(ts, values)`` runs; ``new`` wins a timestamp in both."""
    if not old[0].size:
        return new
    if not new[0].size:
        return old
    if old[0][-1] < new[0][0]:
        return np.concatenate((old[0], new[0])), np.concatenate((old[1], new[1]))
    ts = np.concatenate((old[0], new[0]))
    values = np.concatenate((old[1], new[1]))
    order = np.argsort(ts, kind="stable")  # stable: of equal timestamps, new comes last
    ts, values = ts[order], values[order]
    keep = np.empty(ts.size, dtype=bool)
    keep[-1] = True
    np.not_equal(ts[1:], ts[:-1], out=keep[:-1])
    return ts[keep], values[keep]
