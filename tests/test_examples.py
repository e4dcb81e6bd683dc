"""Every example script runs, as a user would run it: its own process, a fresh directory.

A script with a short mode is run in it: ``--smoke`` (the benchmarks' convention) or
``--selftest`` (a server example serving itself on a free port); any other script is run
as it is and must finish on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
SHORT_MODES = ("--smoke", "--selftest")


def short_mode(script: Path) -> list[str]:
    text = script.read_text(encoding="utf-8")
    return [flag for flag in SHORT_MODES if flag in text][:1]


def run_example(
    script: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "METRICSKIT_CONFIG"}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_required_examples_are_there() -> None:
    names = {s.name for s in SCRIPTS}
    assert {"flask_app.py", "quickstart.py"} <= names
    assert short_mode(EXAMPLES / "flask_app.py") == ["--selftest"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    result = run_example(script, tmp_path, *short_mode(script))
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip(), "an example says what it did"


def test_quickstart_reads_back_what_it_recorded(tmp_path: Path) -> None:
    result = run_example(EXAMPLES / "quickstart.py", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "metrics.db").is_file(), "the default store is a SQLite file in the cwd"
    assert "request durations (s) by endpoint:" in result.stdout
    for endpoint in ("/api/chat", "/api/health"):
        assert endpoint in result.stdout


@pytest.mark.parametrize("integration", ["seed", "init_app"])
def test_flask_selftest_reports_status_and_leaves_no_files(
    tmp_path: Path, integration: str
) -> None:
    result = run_example(
        EXAMPLES / "flask_app.py", tmp_path, "--selftest", "--integration", integration
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert any(line.startswith("overall status: ") for line in lines), result.stdout
    status = next(line for line in lines if line.startswith("overall status: "))
    assert status.split(": ", 1)[1] in ("healthy", "warning", "critical")
    # 3 of the 22 chats fail and 4 are slower than the 100 ms threshold
    assert any("high error rate" in line for line in lines), result.stdout
    assert list(tmp_path.iterdir()) == [], "without a config the selftest keeps to a temp dir"


def test_flask_selftest_with_the_example_config(tmp_path: Path) -> None:
    # the example monitoring.yaml, beside which its SQLite store and logs are written;
    # Slack is pointed at a closed local port whatever the caller's environment says
    config = tmp_path / "monitoring.yaml"
    shutil.copy(EXAMPLES / "monitoring.yaml", config)
    result = run_example(
        EXAMPLES / "flask_app.py",
        tmp_path,
        "--selftest",
        env={"METRICSKIT_CONFIG": str(config), "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/off"},
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "overall status: " in result.stdout
    assert (tmp_path / "metrics.db").is_file()
    assert "monitoring started" in (tmp_path / "monitoring.log").read_text()
