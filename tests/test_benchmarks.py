"""Every benchmark runs in its smoke size, so none of them rots (timings are not checked).

A benchmark whose anchor (Prometheus, VictoriaMetrics, DuckDB) is not installed says so with the
prefix ``benchmarks/anchors.py`` defines; that skips, or fails under
METRICSKIT_REQUIRE_SERVICES=1.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import missing

BENCHMARKS = sorted((Path(__file__).parents[1] / "benchmarks").glob("bench_*.py"))
ANCHOR_MISSING = "anchor not available:"  # benchmarks/anchors.py's ANCHOR_MISSING


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_smoke(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    for line in result.stdout.splitlines():
        if line.startswith(ANCHOR_MISSING):
            missing(f"{script.name}: {line}")
    assert "ratio" in result.stdout.lower(), f"{script.name} must print its ratio to the anchor"


def test_anchor_marker_matches_the_benchmarks() -> None:
    text = (Path(__file__).parents[1] / "benchmarks" / "anchors.py").read_text()
    assert f'ANCHOR_MISSING = "{ANCHOR_MISSING}"' in text


def test_a_missing_python_anchor_is_reported_with_the_marker(tmp_path: Path) -> None:
    """bench_aggregate without DuckDB says so with the prefix, so CI cannot miss it."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "duckdb.py").write_text('raise ImportError("duckdb blocked by the test")\n')
    script = BENCHMARKS[0].parent / "bench_aggregate.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), *sys.path])},
    )
    assert result.returncode == 0, result.stderr
    marked = [line for line in result.stdout.splitlines() if line.startswith(ANCHOR_MISSING)]
    assert len(marked) == 1 and "duckdb" in marked[0].lower(), result.stdout
