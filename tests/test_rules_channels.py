"""Where a rule's notifications go when its channel is missing or off, on the seed config.

- A rule routed to a channel that is not configured notifies through the ``log`` channel
  instead, and ``config check`` and the service say so with ``file:line``.
- A channel whose ``${VAR}`` is not set is off: only what sends to it cares (``alerts
  test`` fails for it, its rules fall back to ``log``); every other command works.
- ``RuleEngine.from_yaml`` substitutes ``${VAR}`` as the config loader does.

Real CLI processes, real SQLite stores, a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from metricskit.model import Series, SeriesKey
from tests.test_channels_http import Receiver

# The seed's alert rules and notification channels, as its guide shows them.
SEED = """
storage:
  type: "sqlite"
  connection_string: "metrics.db"
alerts:
  system:
    high_cpu:
      metric: "system.cpu.usage_percent"
      threshold: 80.0
      operator: "gt"
      duration_seconds: 300
      severity: "warning"
      channels: ["slack"]
    critical_memory:
      metric: "system.memory.usage_percent"
      threshold: 95.0
      operator: "gt"
      duration_seconds: 60
      severity: "critical"
      channels: ["slack", "email"]
  application:
    app_down:
      metric: "app.health.status"
      threshold: 0.5
      operator: "lt"
      duration_seconds: 30
      severity: "critical"
      channels: ["slack", "email", "log"]
    slow_response:
      metric: "app.health.response_time_ms"
      threshold: 2000.0
      operator: "gt"
      duration_seconds: 300
      severity: "warning"
      channels: ["slack"]
  business:
    high_ai_costs:
      metric: "business.ai_calls.cost_today"
      threshold: 100.0
      operator: "gt"
      duration_seconds: 300
      severity: "warning"
      channels: ["slack", "email"]
notifications:
  slack:
    webhook_url: "${SLACK_WEBHOOK_URL}"
    channels:
      default: "#alerts"
      critical: "#critical-alerts"
  email:
    recipients:
      critical: ["admin@maurinventures.com"]
      warning: ["dev-team@maurinventures.com"]
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SLACK_WEBHOOK_URL"}
    return {**env, **extra}


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(**env),
    )


def line_of(text: str, needle: str, after: str = "") -> int:
    """The 1-based line of the first ``needle`` after the line containing ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def write(db: Path, name: str, value: float, tags: dict[str, str] | None = None) -> None:
    store = mk.open_store(f"sqlite:///{db}")
    store.write([Series(SeriesKey.of(name, tags), np.array([time.time_ns()]), np.array([value]))])
    store.close()


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    (tmp_path / "monitoring.yaml").write_text(SEED)
    write(tmp_path / "metrics.db", "system.cpu.usage_percent", 12.0)
    return tmp_path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_unset_slack_variable_only_matters_to_what_sends_to_slack(seed: Path) -> None:
    slack_line = line_of(SEED, "webhook_url")
    for command in (["metrics"], ["status"], ["health"], ["alerts", "list"], ["config", "check"]):
        result = run(seed, *command)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr
        # one warning, once, with where the variable is used and where the rules go
        (warning,) = result.stderr.strip().splitlines()
        assert "environment variable SLACK_WEBHOOK_URL is not set" in warning
        assert f"monitoring.yaml:{slack_line}:" in warning
        assert "'log' channel instead" in warning
    check = run(seed, "config", "check")
    assert check.stdout.startswith("ok: ")
    high_cpu = line_of(SEED, "channels:", after="high_cpu:")
    assert f"monitoring.yaml:{high_cpu}: rule system.high_cpu (and 4 more)" in check.stderr
    test = run(seed, "alerts", "test")
    assert test.returncode == 1
    assert "slack: error: " in test.stdout and "SLACK_WEBHOOK_URL is not set" in test.stdout
    assert "log: ok" in test.stdout


def test_a_variable_outside_the_channels_is_still_required(seed: Path) -> None:
    (seed / "monitoring.yaml").write_text(SEED + "health_checks:\n  app_url: '${APP_URL}'\n")
    result = run(seed, "metrics")
    assert result.returncode == 3
    assert "environment variable APP_URL is not set" in result.stderr


ROUTED = """
collection:
  interval_seconds: 1
  enabled_metrics: {system: [cpu_usage]}
integrations:
  prometheus: {enabled: false}
alerts:
  app:
    to_slack:
      metric: app.queue.depth
      threshold: 10
      operator: gt
      severity: warning
      channels: ["slack"]
    to_pager:
      metric: app.queue.depth
      threshold: 20
      operator: gt
      severity: critical
      channels: ["pagerduty", "log"]
notifications:
  slack:
    webhook_url: "${SLACK_WEBHOOK_URL}"
"""


def test_rules_routed_to_missing_or_off_channels_notify_through_the_log(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(ROUTED)
    write(tmp_path / "metrics.db", "app.queue.depth", 50.0, {"queue": "mail"})
    check = run(tmp_path, "config", "check")
    assert check.returncode == 0, check.stderr
    pager_line = line_of(ROUTED, "channels:", after="to_pager:")
    pager = [w for w in check.stderr.splitlines() if "'pagerduty'" in w]
    assert pager == [
        f"warning: monitoring.yaml:{pager_line}: rule app.to_pager routes to channel "
        "'pagerduty', which is not configured (configured: log); its events go to the "
        "'log' channel instead"
    ]
    started = run(tmp_path, "start", "--quiet", "--duration", "3")
    assert started.returncode == 0, started.stderr
    alerts = (tmp_path / "monitoring_alerts.log").read_text().splitlines()
    fired = sorted(re.search(r"rule=(\S+)", line).group(1) for line in alerts)  # type: ignore[union-attr]
    # each alert once, though to_pager names the log and a missing channel
    assert fired == ["app.to_pager", "app.to_slack"], alerts
    log = (tmp_path / "monitoring.log").read_text()
    assert "SLACK_WEBHOOK_URL is not set" in log and "'pagerduty'" in log


def test_from_yaml_substitutes_variables_like_the_config_loader(
    seed: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first example of docs/rules.md, on the seed config with the variable set."""
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url("/hooks/seed"))
    (seed / "config").mkdir()
    (seed / "config" / "monitoring.yaml").write_text(SEED)
    monkeypatch.chdir(seed)
    text = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text()
    first = re.search(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert first is not None
    namespace: dict[str, object] = {}
    exec(compile(first.group(1), "docs/rules.md python block 1", "exec"), namespace)
    engine = namespace["engine"]
    notifier = engine.notifier  # type: ignore[attr-defined]
    assert "slack" in notifier.channels and not notifier.unavailable
    # test_channels() in the example reached the receiver named by the variable
    assert [r.path for r in receiver.wait_for(1)] == ["/hooks/seed"]
    notifier.close()
    engine.store.close()  # type: ignore[attr-defined]
