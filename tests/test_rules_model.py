"""Rule files: the seed's format loads; bad files are rejected with the file and the line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from metricskit._yaml import load_yaml, load_yaml_text
from metricskit.alerting.events import Severity
from metricskit.alerting.rules_model import AlertRule, RecordingRule, load_rules
from metricskit.collect.derive import Derivation
from metricskit.errors import ConfigError

SEED = """\
collection:
  interval_seconds: 60
alerts:
  system:
    high_cpu:
      metric: "system.cpu.usage_percent"
      threshold: 80.0
      operator: "gt"
      duration_seconds: 300
      severity: "warning"
      enabled: true
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
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "monitoring.yaml"
    path.write_text(text)
    return str(path)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_the_seed_format_loads_unchanged(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, SEED))
    assert [r.name for r in rules.alerts] == [
        "system.high_cpu",
        "system.critical_memory",
        "application.app_down",
    ]
    cpu = rules.alerts[0]
    assert (cpu.metric, cpu.threshold, cpu.operator, cpu.for_ns) == (
        "system.cpu.usage_percent",
        80.0,
        "gt",
        300 * 10**9,
    )
    assert cpu.severity is Severity.WARNING and cpu.channels == ("slack",) and cpu.enabled
    assert rules.alerts[2].severity is Severity.CRITICAL
    assert rules.alerts[1].enabled  # enabled defaults to true
    assert cpu.no_data == "keep" and cpu.stat == "last" and cpu.lookback == 300


def test_extras_load(tmp_path: Path) -> None:
    text = SEED.replace(
        '      channels: ["slack"]\n',
        '      channels: ["slack"]\n'
        "      tags: {host: web1}\n"
        "      stat: p95\n"
        "      window: 5m\n"
        "      recovery_threshold: 70\n"
        "      keep_firing_seconds: 2m\n"
        "      repeat_interval: 1h\n"
        "      no_data: alerting\n"
        '      summary: "{metric} on {tags[host]} = {value}"\n',
        1,
    )
    cpu = load_rules(write(tmp_path, text)).alerts[0]
    assert cpu.tags == {"host": "web1"} and cpu.quantile == 0.95
    assert cpu.window_ns == 300 * 10**9 and cpu.keep_firing_ns == 120 * 10**9
    assert cpu.repeat_ns == 3600 * 10**9 and cpu.recovery_threshold == 70


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("threshold: 80.0", "treshold: 80.0", "treshold", "unknown key 'treshold'"),
        ('operator: "gt"', 'operator: "bigger"', "bigger", "operator"),
        ("duration_seconds: 300", "duration_seconds: -5", "-5", "negative"),
        ('"system.cpu.usage_percent"', '"system..cpu usage"', "system..cpu", "metric name"),
        ('severity: "warning"', 'severity: "urgent"', "urgent", "severity"),
        ("enabled: true", "enabled: maybe", "maybe", "enabled"),
        ('channels: ["slack"]', 'channels: ["slack"]\n      window: 5m', "window: 5m", "stat"),
        ('channels: ["slack"]', 'channels: ["slack"]\n      stat: p95', "stat: p95", "window"),
        ('channels: ["slack"]', 'channels: ["slack"]\n      stat: median', "median", "stat"),
        ('channels: ["slack"]', 'channels: ["slack"]\n      no_data: maybe', "no_data", "no_data"),
        (
            'channels: ["slack"]',
            'channels: ["slack"]\n      recovery_threshold: 90',
            "recovery_threshold",
            "<= threshold",
        ),
        (
            'channels: ["slack"]',
            'channels: ["slack"]\n      summary: "{valeu}"',
            "valeu",
            "placeholder",
        ),
        (
            'channels: ["slack"]',
            'channels: ["slack"]\n      tags: {"bad key": x}',
            "bad key",
            "tags",
        ),
        ("threshold: 95.0", "threshold: .nan", ".nan", "finite"),
    ],
)
def test_bad_rules_name_file_and_line(
    tmp_path: Path, old: str, new: str, needle: str, message: str
) -> None:
    text = SEED.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    err = info.value
    assert err.path == path
    assert err.line == line_of(text, needle), str(err)
    assert message in str(err)
    assert str(err).startswith(f"{path}:{err.line}: ")


def test_a_missing_required_key_points_at_the_rule(tmp_path: Path) -> None:
    text = SEED.replace('      operator: "lt"\n', "")
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, text))
    assert info.value.line == line_of(text, "app_down:")
    assert "operator: required key missing" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("alerts:\n  system:\n    high_cpu: {metric: [unclosed\n", 4),
        ("alerts:\n  system:\n    a: 1\n   b: 2\n", 4),
        ("alerts:\n\tsystem: {}\n", 2),
        ("alerts:\n  system:\n    x:\n      metric: a.b\n      metric: a.c\n", 5),
    ],
)
def test_malformed_yaml_gives_the_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert (info.value.path, info.value.line) == (path, line)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "nope.yaml")


def test_locator_maps_key_paths_to_lines() -> None:
    doc = load_yaml_text(SEED, "m.yaml")
    assert doc.line(("alerts", "system", "high_cpu", "operator")) == 8
    assert doc.line(("alerts", "system", "critical_memory", "channels", 1)) == 19
    # a missing key reports its nearest existing ancestor
    assert doc.line(("alerts", "system", "high_cpu", "nope")) == 5
    assert doc.data["alerts"]["system"]["high_cpu"]["threshold"] == 80.0
    err = doc.error("boom", ("collection", "interval_seconds"))
    assert (err.path, err.line, str(err)) == ("m.yaml", 2, "m.yaml:2: boom")


def test_empty_sections_are_allowed() -> None:
    rules = load_rules("alerts:\nrecording:\n  g:\n", text=True)
    assert rules.alerts == () and rules.recording == ()


def test_recording_rules_are_derivations(tmp_path: Path) -> None:
    text = (
        "recording:\n"
        "  business:\n"
        "    cost_today:\n"
        "      target: business.ai_calls.cost_today\n"
        "      source: business.ai_calls.cost_usd\n"
        "      function: sum\n"
        "      window: today\n"
        "      tz: UTC\n"
    )
    (rec,) = load_rules(write(tmp_path, text)).recording
    assert rec.name == "business.cost_today"
    assert rec.derivation() == Derivation(
        target="business.ai_calls.cost_today",
        source="business.ai_calls.cost_usd",
        function="sum",
        window="today",
        tz="UTC",
    )
    bad = text.replace("function: sum", "function: summ")
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, bad))
    assert info.value.line == 6 and "did you mean 'sum'" in str(info.value)
    bad_tz = text.replace("tz: UTC", "tz: Mars/Olympus")
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, bad_tz))
    assert info.value.line == 3 and "time zone" in str(info.value)


def test_recording_rule_keys_are_the_derivation_fields() -> None:
    # one mechanism: a key Derivation grows must be accepted here too
    fields = {f.name for f in dataclasses.fields(Derivation) if f.init}
    assert set(RecordingRule.model_fields) == fields


def test_rules_in_code() -> None:
    r = AlertRule.create(
        "system.high_cpu",
        metric="system.cpu.usage_percent",
        threshold=80,
        operator="gt",
        duration_seconds="5m",
        severity="CRITICAL",
    )
    assert (r.name, r.group, r.for_ns, r.severity) == (
        "system.high_cpu",
        "system",
        300 * 10**9,
        Severity.CRITICAL,
    )
    with pytest.raises(ValueError, match="operator"):
        AlertRule.create("x.y", metric="a.b", threshold=1, operator=">")
