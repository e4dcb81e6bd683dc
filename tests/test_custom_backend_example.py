"""examples/custom_backend (metricskit-jsonl): installed, found by entry point, conformant.

This test installs nothing: ``scripts/setup.sh`` installs the example with ``pip -e``.
Without it the tests skip, unless ``METRICSKIT_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path

import numpy as np
import pytest

import metricskit
from metricskit.storage.registry import ENTRY_POINT_GROUP, available_schemes
from metricskit.testing.conformance import BackendConformance
from tests.services import missing

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_backend"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    try:
        distribution("metricskit-jsonl")
    except PackageNotFoundError:
        missing("metricskit-jsonl is not installed: pip install -e examples/custom_backend")


def test_entry_point_is_registered() -> None:
    (ep,) = entry_points(group=ENTRY_POINT_GROUP, name="jsonl")
    assert ep.value == "metricskit_jsonl:JsonlBackend"
    assert "jsonl" in available_schemes()


def test_open_store_finds_it_and_data_survives_reopening(tmp_path: Path) -> None:
    url = f"jsonl://{tmp_path / 'store'}"
    store = metricskit.open_store(url)
    assert type(store.backend).__module__.startswith("metricskit_jsonl")
    with metricskit.Recorder(store, flush_interval=None) as rec:
        rec.record_many("example.disk.used_gb", [1.0, 2.0, 4.0], [60.0, 120.0, 180.0])
    store.close()
    reopened = metricskit.open_store(url)
    frame = reopened.frame("example.disk.used_gb")
    assert frame["value"].tolist() == [1.0, 2.0, 4.0]
    stats = reopened.aggregate("example.disk.used_gb", "1h", ["count", "max"])
    np.testing.assert_array_equal(stats[["count", "max"]].to_numpy(), [[3, 4.0]])
    reopened.close()


def test_example_conformance_suite_passes() -> None:
    # its own pytest process, so the example's pyproject (rootdir, options) applies
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed is not None, done.stdout[-2000:]
    suite = [n for n in dir(BackendConformance) if n.startswith("test_")]
    # every conformance test ran and passed (none skipped: it claims every capability)
    assert int(passed.group(1)) > len(suite)
    assert "skipped" not in done.stdout.splitlines()[-1]
