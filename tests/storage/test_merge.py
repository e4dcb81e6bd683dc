"""``metricskit.storage.merge_last_wins``: the chunk merge offered to plugin authors."""

from __future__ import annotations

import numpy as np

from metricskit.storage import merge_last_wins


def _chunk(ts: list[int], vs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(ts, dtype=np.int64), np.array(vs, dtype=np.float64)


def test_later_chunks_win_and_timestamps_come_out_sorted_and_unique() -> None:
    ts, vs = merge_last_wins([_chunk([3, 1, 2], [30, 10, 20]), _chunk([2, 4], [21, 40])])
    assert ts.tolist() == [1, 2, 3, 4]
    assert vs.tolist() == [10, 21, 30, 40]


def test_within_a_chunk_the_later_position_wins() -> None:
    ts, vs = merge_last_wins([_chunk([5, 5, 5, 1], [1, 2, 3, 0])])
    assert ts.tolist() == [1, 5]
    assert vs.tolist() == [0, 3]


def test_a_sorted_single_chunk_is_returned_without_a_copy() -> None:
    chunk = _chunk([1, 2, 3], [1, 2, 3])
    ts, vs = merge_last_wins([chunk])
    assert ts is chunk[0] and vs is chunk[1]


def test_no_chunks_is_an_empty_series() -> None:
    ts, vs = merge_last_wins([])
    assert ts.dtype == np.int64 and vs.dtype == np.float64 and ts.size == vs.size == 0
