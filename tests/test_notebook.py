"""examples/trend_analysis.ipynb runs top to bottom (its cells assert the known answers).

Executed with nbmake in its own pytest process, as a user would run it. Needs nbmake,
ipykernel and matplotlib (dev dependencies): without them the test skips, unless
``METRICSKIT_REQUIRE_SERVICES=1`` (CI), where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "trend_analysis.ipynb"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        message = f"needs {', '.join(missing)}: pip install nbmake ipykernel matplotlib"
        if os.environ.get("METRICSKIT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"METRICSKIT_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


def test_trend_analysis_notebook_runs(tmp_path: Path) -> None:
    _require("nbmake", "ipykernel", "matplotlib")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "--nbmake-timeout=120",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            str(NOTEBOOK),
        ],
        cwd=tmp_path,  # the notebook must not depend on the working directory
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-2000:]
