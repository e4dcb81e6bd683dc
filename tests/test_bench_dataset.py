"""benchmarks/dataset.py must reproduce shared/bench/gen_dataset.py value for value."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.services import shared_dir

ROOT = Path(__file__).parents[1]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return _load("_reference_gen_dataset", shared_dir() / "bench" / "gen_dataset.py")


@pytest.fixture(scope="module")
def ours() -> ModuleType:
    return _load("_bench_dataset", ROOT / "benchmarks" / "dataset.py")


def test_small_dataset_is_identical(reference: ModuleType, ours: ModuleType) -> None:
    expected = list(reference.series_iter(20, 200, 42))
    got = list(ours.series_iter(20, 200, 42))
    assert len(got) == 20
    for (ename, elabels, evals), (name, labels, vals) in zip(expected, got, strict=True):
        assert (name, labels) == (ename, elabels)
        assert [type(v) for v in vals] == [type(v) for v in evals]
        assert vals == evals  # exact: same floats bit for bit, same ints


def test_arrays_match_the_iterator(reference: ModuleType, ours: ModuleType) -> None:
    data = ours.arrays(20, 200, 7)
    expected = list(reference.series_iter(20, 200, 7))
    assert data.names == [name for name, _, _ in expected]
    assert data.labels == [labels for _, labels, _ in expected]
    np.testing.assert_array_equal(data.values, np.array([v for _, _, v in expected], dtype=float))
    assert data.timestamps_ns[0] == ours.T0 * 10**9
    assert np.all(np.diff(data.timestamps_ns) == ours.STEP_S * 10**9)


def test_first_series_at_full_size(reference: ModuleType, ours: ModuleType) -> None:
    ename, elabels, evals = next(iter(reference.series_iter(1000, 10_000, 42)))
    name, labels, vals = next(iter(ours.series_iter()))
    assert (name, labels) == (ename, elabels) == ("bench_gauge", elabels)
    assert len(vals) == 10_000
    assert vals == evals


def test_cache_round_trips(tmp_path: Path, ours: ModuleType) -> None:
    first = ours.arrays(4, 50, 3, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.npy"))
    again = ours.arrays(4, 50, 3, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.values, again.values)
