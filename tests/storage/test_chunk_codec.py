"""The block codec alone: bit-exact round trips of any timestamps and any float64 bits."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metricskit.errors import CorruptDataError
from metricskit.storage._chunk_codec import (
    BLOCK_VERSION,
    decode_block,
    decode_blocks,
    encode_block,
    merge_last_wins,
)


def _round_trip(ts: np.ndarray, values: np.ndarray) -> int:
    blob = encode_block(ts, values)
    got_ts, got_values = decode_block(blob)
    assert got_ts.dtype == np.int64 and got_values.dtype == np.float64
    assert got_ts.tolist() == ts.tolist()
    assert got_values.view(np.int64).tolist() == values.view(np.int64).tolist()
    return len(blob)


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=300),
    st.data(),
)
def test_any_timestamps_and_any_bits(stamps: set[int], data: st.DataObject) -> None:
    ts = np.array(sorted(stamps), dtype=np.int64)
    bits = data.draw(hnp.arrays(np.int64, ts.size, elements=st.integers(-(2**63), 2**63 - 1)))
    _round_trip(ts, bits.view(np.float64))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=300))
def test_decimal_values_with_exceptions(raw: list[float]) -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # rounding 1e308 overflows to inf
        values = np.round(np.array(raw, dtype=np.float64), 2)
    _round_trip(np.arange(values.size, dtype=np.int64) * 10**9, values)


def test_regular_gauges_and_counters_are_small() -> None:
    ts = 1_795_046_400 * 10**9 + np.arange(4096, dtype=np.int64) * 10**10
    rng = np.random.default_rng(1)
    gauge = np.round(50 + np.cumsum(rng.normal(0, 0.5, 4096)), 2)
    counter = np.cumsum(rng.integers(0, 200, 4096)).astype(np.float64)
    assert _round_trip(ts, gauge) < 1.5 * 4096
    assert _round_trip(ts, counter) < 1.5 * 4096
    special = gauge.copy()
    special[[0, 7, 4095]] = [np.nan, -0.0, np.inf]
    assert _round_trip(ts, special) < 1.6 * 4096


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=300),
    st.lists(st.integers(1, 40), max_size=6),
    st.booleans(),
)
def test_blocks_decode_joined(raw: list[float], cuts: list[int], regular: bool) -> None:
    values = np.array(raw, dtype=np.float64)
    gaps = np.ones(values.size) if regular else np.arange(values.size) % 7 + 1
    ts = np.cumsum(gaps).astype(np.int64) * 10**9
    bounds = sorted({0, values.size, *(c % values.size for c in cuts)})
    blobs = [encode_block(ts[a:b], values[a:b]) for a, b in pairwise(bounds)]
    got_ts, got_values = decode_blocks(blobs)
    assert got_ts.tolist() == ts.tolist()
    assert got_values.view(np.int64).tolist() == values.view(np.int64).tolist()


# Written by metricskit before zstd (block version 1, zlib): stores hold such blocks.
_V1_TS = (np.arange(20, dtype=np.int64) * 15 + np.arange(20) % 3) * 10**9
_V1_BLOCKS = [
    (  # kind DECIMAL, irregular timestamps, value 4 a NaN exception
        "0100080214000000000000000000000000a0acb90300000000a22f4dffffffff02d4feffffffffffff"
        "01000000789c63604007710c7bd0d0058605686813432a1a626060c4406481952b57eaa8ad44010c8c"
        "40c0c4880258e01a7ed40300cc9d22e7",
        _V1_TS,
        np.where(np.arange(20) == 4, np.nan, np.round(np.arange(20) * 1.25 - 3, 2)),
    ),
    (  # kind XOR
        "0101080806000000000000000000000000a0acb90300000000a22f4dffffffff789c636060608863d8"
        "13778161c1854d0ca99b1818181990c1ac3fbfd86685cefc2ffc6626904c9b0922df0982c8a8a520b2"
        "a97666e8cef88b661f55ed191cf7ed770000345f2013",
        _V1_TS[:6],
        np.array([0.1, 0.7, 1e300, -2.2, np.inf, 1 / 3]),
    ),
]


@pytest.mark.parametrize(("blob", "ts", "values"), _V1_BLOCKS)
def test_version_1_blocks_still_decode(blob: str, ts: np.ndarray, values: np.ndarray) -> None:
    got_ts, got_values = decode_block(bytes.fromhex(blob))
    assert got_ts.tolist() == ts.tolist()
    assert got_values.view(np.int64).tolist() == values.view(np.int64).tolist()
    assert encode_block(ts, values)[0] == BLOCK_VERSION == 2


def test_damaged_block_is_reported() -> None:
    blob = bytearray(encode_block(np.arange(100, dtype=np.int64), np.arange(100.0)))
    with pytest.raises(CorruptDataError):
        decode_block(bytes(blob[:-5]))
    blob[0] = 99
    with pytest.raises(CorruptDataError):
        decode_block(bytes(blob))


def test_merge_last_wins_prefers_new() -> None:
    old = (np.array([1, 3, 5], dtype=np.int64), np.array([1.0, 3.0, 5.0]))
    new = (np.array([3, 4], dtype=np.int64), np.array([30.0, 40.0]))
    ts, values = merge_last_wins(old, new)
    assert ts.tolist() == [1, 3, 4, 5]
    assert values.tolist() == [1.0, 30.0, 40.0, 5.0]


def test_series_scraped_together_share_one_timestamp_array() -> None:
    ts = 10**18 + np.arange(6000, dtype=np.int64) * 10**10
    grids: dict[tuple[int, ...], np.ndarray] = {}
    decoded = []
    for scale in (1.0, 2.5):
        values = np.arange(6000.0) * scale
        blobs = [encode_block(ts[:4096], values[:4096]), encode_block(ts[4096:], values[4096:])]
        decoded.append(decode_blocks(blobs, grids))
        assert decoded[-1][1].tolist() == values.tolist()
    (first_ts, _), (second_ts, _) = decoded
    assert second_ts is first_ts and not first_ts.flags.writeable
    assert first_ts.tolist() == ts.tolist()
    jittered = ts.copy()
    jittered[5] += 1
    other, _ = decode_blocks([encode_block(jittered, np.ones(6000))], grids)
    assert other.tolist() == jittered.tolist()
