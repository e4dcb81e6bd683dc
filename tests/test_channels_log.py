"""The log channel writes one seed-style line per event to a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from metricskit.alerting.channels import DeliveryError, LogChannel
from metricskit.alerting.channels.log import format_log_line
from metricskit.alerting.events import AlertState, Severity
from metricskit.alerting.notify import Notifier, make_test_event
from tests.test_channels_http import T0, make_event
from tests.test_rules_timeline import Env, rule


def test_firing_line_reads_like_the_seed() -> None:
    line = format_log_line(make_event(tags={"host": "web1", "region": "eu"}))
    assert line == (
        "2024-05-01T12:00:00.000Z ALERT: High Memory Usage - "
        "system.memory.usage_percent = 92.5% (threshold > 90%) "
        "[FIRING critical] rule=system.high_memory host=web1 region=eu"
    )


def test_resolved_line_has_firing_value_recovery_value_and_duration() -> None:
    line = format_log_line(make_event(state=AlertState.RESOLVED, value=71.25))
    assert line == (
        "2024-05-01T12:05:00.000Z RESOLVED: High Memory Usage - "
        "system.memory.usage_percent = 71.25% (was 92.5% when it fired; fired for 5m) "
        "[RESOLVED critical] rule=system.high_memory host=web1"
    )


def test_multiline_summary_stays_on_one_line_and_test_events_are_marked() -> None:
    event = make_event(summary="two\nlines", severity=Severity.WARNING, tags={})
    line = format_log_line(event)
    assert "\n" not in line
    assert "two lines - system.memory.usage_percent" in line
    assert line.endswith("[FIRING warning] rule=system.high_memory")
    assert " TEST ALERT: Test alert from metricskit" in format_log_line(make_test_event("log"))


def test_appends_lines_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "monitoring_alerts.log"
    channel = LogChannel(path)
    channel.send([make_event(), make_event(state=AlertState.PENDING, at_ns=T0 + 1)])
    channel.send([make_event(state=AlertState.RESOLVED)])
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].split(" ", 2)[1] == "ALERT:"
    assert " PENDING: " in lines[1]
    assert " RESOLVED: " in lines[2]


def test_unwritable_path_raises_delivery_error(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="cannot append"):
        LogChannel(tmp_path).send([make_event()])  # a directory, not a file


def test_from_config_puts_relative_paths_under_log_dir(tmp_path: Path) -> None:
    assert LogChannel.from_config(None, base_dir=tmp_path).path == (
        tmp_path / "monitoring_alerts.log"
    )
    assert LogChannel.from_config({"path": "a.log"}, base_dir=None).path == Path("a.log")
    absolute = tmp_path / "x.log"
    assert LogChannel.from_config({"path": str(absolute)}, base_dir="/else").path == absolute


# a tag value that could come from another source than the validated model (or from an
# older store): it tries to forge a second line, colour the terminal and break the line
FORGED = "web1\n2024-05-01T12:00:00.000Z RESOLVED: forged \x1b[2J\r\u2028\x85end"


def test_control_characters_in_tags_and_names_cannot_forge_lines(tmp_path: Path) -> None:
    import dataclasses

    from metricskit.alerting.notify import Notifier
    from metricskit.model import Tags

    event = dataclasses.replace(
        make_event(channels=("log",)),
        tags=Tags._trusted((("host", FORGED),)),
        rule="system.high\nmemory",
        summary="Memory\x1b[31m high\x07",
    )
    path = tmp_path / "monitoring_alerts.log"
    with Notifier([LogChannel(path)]) as notifier:
        notifier.notify([event])
        assert notifier.flush(30)
    text = path.read_text()
    (line,) = text.splitlines()  # str.splitlines breaks at \r, \x85, \u2028 ... too
    assert text.count("\n") == 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line)
    escaped = "web1\\n2024-05-01T12:00:00.000Z RESOLVED: forged \\x1b[2J\\r\\u2028\\x85end"
    assert f"host={escaped}" in line
    assert "rule=system.high\\nmemory" in line and "Memory\\x1b[31m high\\x07 - " in line


def test_a_rule_summary_with_control_characters_stays_one_line(tmp_path: Path) -> None:
    import numpy as np

    from metricskit import Series, SeriesKey, open_store
    from metricskit.alerting.engine import RuleEngine
    from metricskit.alerting.notify import Notifier
    from metricskit.alerting.rules_model import AlertRule
    from metricskit.testing import ManualClock

    rule = AlertRule.create(
        "app.queue",
        metric="app.queue.depth",
        threshold=1,
        operator="gt",
        channels=["log"],
        summary="Queue {value}\r\n2024-05-01T12:00:00.000Z RESOLVED: \x1b[8mforged",
    )
    path = tmp_path / "monitoring_alerts.log"
    store, clock = open_store("memory://"), ManualClock(1_700_000_000)
    with Notifier([LogChannel(path)]) as notifier:
        engine = RuleEngine([rule], store, notifier=notifier, clock=clock)
        key = SeriesKey.of("app.queue.depth", {"queue": "mail"})
        store.write([Series(key, np.array([clock.now_ns()]), np.array([5.0]))])
        engine.evaluate()
        assert notifier.flush(30)
    (line,) = path.read_text().splitlines()
    assert "Queue 5 2024-05-01T12:00:00.000Z RESOLVED: \\x1b[8mforged - app.queue.depth" in line
    store.close()


def test_pending_events_of_a_real_engine_reach_the_log_file_only(tmp_path: Path) -> None:
    """docs/notifications.md: the log keeps every state, other receivers never see pending."""
    path = tmp_path / "alerts.log"
    env = Env()
    slack = env.capture  # a CapturingChannel named "slack"
    env.notifier.close()
    env.notifier = Notifier([LogChannel(path), slack])
    engine = env.engine(rule(duration_seconds=300, channels=["log", "slack"]))
    try:
        # pending, cancelled; then pending again until it fires
        changes = env.run(engine, [95, 50, 95, 95, 95, 95, 95, 95], step=60)
        assert changes[0] == ["pending"] and changes[1] == ["inactive"]
        assert changes[7] == ["firing"]
        assert env.notifier.flush(timeout=30)
        states = [line.split(" [", 1)[1].split()[0] for line in path.read_text().splitlines()]
        assert states == ["PENDING", "INACTIVE", "PENDING", "FIRING"]
        assert [e.state for e in slack.events] == [AlertState.FIRING]
        assert env.notifier.stats()["slack"]["sent"] == 1
    finally:
        env.close()


def test_a_rule_without_duration_logs_firing_without_a_pending_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.log"
    env = Env()
    env.notifier.close()
    env.notifier = Notifier([LogChannel(path)])
    engine = env.engine(rule(channels=["log"]))
    try:
        assert env.run(engine, [95]) == [["pending", "firing"]]
        assert env.notifier.flush(timeout=30)
        assert [" ALERT: " in line for line in path.read_text().splitlines()] == [True]
    finally:
        env.close()
