"""Restarts across processes: a second RuleEngine in another process on the same SQLite
store picks up every alert shape where the first left it, and the CLI reads that state.

Each phase runs in its own ``python`` process (``_CHILD`` below) with a ManualClock, a
real SQLite file and a real Notifier delivering to a CapturingChannel; it prints what
it saw as JSON. Tagged series matter: their labels are persisted as JSON next to the
fields, and restoring them once crashed every reader of the store.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import metricskit as mk
from metricskit.model import Series, SeriesKey
from tests.services import free_port

T0 = 1_700_000_000
METRIC = "app.test.value"
TAGS = {"endpoint": "/api/chat", "host": "web1", "note": 'a "quoted", {braced} value'}

_CHILD = r"""
import json, sys
import numpy as np
from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.notify import Notifier
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.rules_model import AlertRule
from metricskit.testing import ManualClock
from metricskit.testing.channels import CapturingChannel

spec = json.loads(sys.argv[1])
t0 = spec["t0"]
store = open_store(spec["url"])
clock = ManualClock(t0 + spec["steps"][0][0] if spec["steps"] else t0)
capture = CapturingChannel("slack")
notifier = Notifier([capture])
rules = [AlertRule.create(name, **fields) for name, fields in spec["rules"]]
engine = RuleEngine(rules, store, notifier=notifier, clock=clock)

def offset(ns):
    return None if ns is None else ns / 1e9 - t0

restored = [
    [a.rule, a.state.value, dict(a.tags), offset(a.since_ns), offset(a.fired_at_ns)]
    for a in engine.active_alerts()
]
if spec.get("silence"):
    engine.silence(rule=spec["silence"], duration="1h")
changes = []
for at, value, tags in spec["steps"]:
    clock.set(t0 + at)
    if value is not None:
        key = SeriesKey.of(spec["metric"], tags or None)
        ts = np.array([clock.now_ns()], dtype=np.int64)
        store.write([Series(key, ts, np.array([value], dtype=np.float64))])
    changes.append([e.state.value for e in engine.evaluate()])
assert notifier.flush(timeout=60)
notes = [[e.state.value, offset(e.at_ns), dict(e.tags)] for e in capture.events]
notifier.close()
store.close()
print(json.dumps({"restored": restored, "changes": changes, "notes": notes}))
"""


def phase(
    url: str,
    rule_fields: dict[str, Any],
    steps: list[tuple[float, float | None, dict[str, str]]],
    *,
    silence: bool = False,
) -> dict[str, Any]:
    """Run one engine's life in a new process; what it restored, changed and delivered."""
    fields = {"metric": METRIC, "threshold": 80.0, "operator": "gt", "channels": ["slack"]}
    spec = {
        "t0": T0,
        "url": url,
        "metric": METRIC,
        "rules": [["app.high", {**fields, **rule_fields}]],
        "steps": steps,
        "silence": "app.high" if silence else None,
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# (rule fields, first life's values, second life's values, silenced in the first life,
#  what the second life restores, its changes per step, its notifications)
SHAPES: dict[str, tuple[dict[str, Any], list[float], list[float], bool, Any, Any, Any]] = {
    "pending": (
        {"duration_seconds": 300},
        [90, 90, 90],
        [90, 90, 90],
        False,
        [("pending", 0, None)],
        [[], [], ["firing"]],
        [("firing", 300)],
    ),
    "firing": (
        {},
        [90],
        [90, 10],
        False,
        [("firing", 0, 0)],
        [[], ["resolved"]],
        [("resolved", 120)],
    ),
    "keep_firing": (
        {"keep_firing_seconds": 120},
        [90, 10],
        [10, 10],
        False,
        [("firing", 0, 0)],
        [[], ["resolved"]],
        [("resolved", 180)],
    ),
    # silences live in memory: the firing notification they held back goes out once
    "silenced": (
        {},
        [90],
        [90, 90],
        True,
        [("firing", 0, 0)],
        [[], []],
        [("firing", 60)],
    ),
    "repeat_due": (
        {"repeat_interval": "2m"},
        [90, 90],
        [90, 90],
        False,
        [("firing", 0, 0)],
        [[], []],
        [("firing", 120)],
    ),
    # fired, repeated, resolved: nothing is restored, and the next episode is new
    "resolved_after_repeating": (
        {"repeat_interval": "2m"},
        [90, 90, 90, 10],
        [10, 90],
        False,
        [],
        [[], ["pending", "firing"]],
        [("firing", 300)],
    ),
}


@pytest.mark.parametrize("tags", [{}, TAGS], ids=["untagged", "tagged"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_second_process_restores_every_shape(
    tmp_path: Path, shape: str, tags: dict[str, str]
) -> None:
    fields, first, second, silenced, restored, changes, notes = SHAPES[shape]
    url = f"sqlite:///{tmp_path / 'm.db'}"
    one = phase(url, fields, [(i * 60, v, tags) for i, v in enumerate(first)], silence=silenced)
    assert one["restored"] == []
    start = len(first)
    two = phase(url, fields, [((start + i) * 60, v, tags) for i, v in enumerate(second)])
    assert two["restored"] == [["app.high", s, tags, since, fired] for s, since, fired in restored]
    assert two["changes"] == changes
    assert two["notes"] == [[s, at, tags] for s, at in notes]


# -- the CLI on a store holding a tagged alert ------------------------------------------

CONFIG = """
collection:
  interval_seconds: 1
  enabled_metrics: {system: [cpu_usage]}
integrations:
  prometheus: {enabled: false}
alerts:
  application:
    app_down:
      metric: app.health.status
      threshold: 0.5
      operator: lt
      duration_seconds: 0
      severity: critical
      channels: [log]
"""


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_restarted_start_and_read_commands_with_a_tagged_alert(tmp_path: Path) -> None:
    (tmp_path / "monitoring.yaml").write_text(CONFIG)
    store = mk.open_store(f"sqlite:///{tmp_path / 'metrics.db'}")
    key = SeriesKey.of("app.health.status", {"check": "api", "host": "web1"})
    store.write([Series(key, np.array([time.time_ns()]), np.array([0.0]))])
    store.close()
    # two lives of the service; the second must neither crash nor re-send
    for _ in range(2):
        started = _run(tmp_path, "start", "--quiet", "--duration", "3")
        assert started.returncode == 0, started.stderr
    log = (tmp_path / "monitoring.log").read_text()
    assert "Traceback" not in log and "evaluation failed" not in log, log
    lines = (tmp_path / "monitoring_alerts.log").read_text().splitlines()
    assert [line.split(" ", 2)[1] for line in lines] == ["ALERT:"], lines

    listed = _run(tmp_path, "alerts", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    (alert,) = json.loads(listed.stdout)
    assert alert["rule"] == "application.app_down" and alert["state"] == "firing"
    assert alert["tags"] == {"check": "api", "host": "web1"}
    for command in (("status",), ("dashboard",), ("health",)):
        result = _run(tmp_path, *command)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert result.returncode == (2 if command == ("health",) else 0), result.stderr

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricskit", "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                health = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=60)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert health.status_code == 503  # critical, not a 500
        assert health.json()["overall_status"] == "critical"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_an_engine_that_never_evaluates_follows_the_one_that_does(tmp_path: Path) -> None:
    """`metricskit serve` (or an app that only records) beside `metricskit start`: its
    engine reads the state `start` persists; read once and kept, its /api/health and
    /api/v1/alerts showed the alerts of their first request for as long as it ran."""
    from metricskit.alerting.rules_model import AlertRule
    from metricskit.testing import ManualClock

    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    clock = ManualClock(T0)
    rule = AlertRule.create("app.high", metric=METRIC, threshold=80.0, operator="gt")
    writer, reader = mk.open_store(url), mk.open_store(url)
    evaluator = mk.RuleEngine([rule], writer, clock=clock)
    server = mk.RuleEngine([rule], reader, clock=clock)
    try:
        for value, states in ((95.0, ["firing"]), (50.0, []), (96.0, ["firing"])):
            key = SeriesKey.of(METRIC, TAGS)
            writer.write([Series(key, np.array([clock.now_ns()]), np.array([value]))])
            evaluator.evaluate()
            assert [a.state.value for a in server.active_alerts()] == states, value
            clock.advance(60)
    finally:
        writer.close()
        reader.close()
