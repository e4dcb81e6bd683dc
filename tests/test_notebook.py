"""examples/trend_analysis.ipynb runs top to bottom (its cells assert the known answers).

Executed with nbmake in its own pytest process, as a user would run it. Needs nbmake,
ipykernel and matplotlib (dev dependencies): without them the test skips, unless
``METRICSKIT_REQUIRE_SERVICES=1`` (CI), where it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import require_module

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "trend_analysis.ipynb"


def test_trend_analysis_notebook_runs(tmp_path: Path) -> None:
    for module in ("nbmake", "ipykernel", "matplotlib"):
        require_module(module, "pip install nbmake ipykernel matplotlib")
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
