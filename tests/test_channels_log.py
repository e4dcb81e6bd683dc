"""The log channel writes one seed-style line per event to a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from metricskit.channels import DeliveryError, LogChannel
from metricskit.channels.log import format_log_line
from metricskit.events import AlertState, Severity
from metricskit.notify import make_test_event
from tests.test_channels_http import T0, make_event


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
