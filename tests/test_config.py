import itertools
from pathlib import Path

import pytest

from metricskit.config import load_config
from metricskit.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "examples" / "monitoring.yaml"


def test_example_with_every_seed_key_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    cfg = load_config(EXAMPLE)
    assert cfg.store_url == f"sqlite:///{EXAMPLE.parent.resolve() / 'metrics.db'}"
    assert cfg.interval_seconds == 60 and cfg.retention_days == 30
    assert cfg.storage.max_records_per_metric == 10000
    assert {r.name for r in cfg.rules.alerts} >= {"system.high_cpu", "application.app_down"}
    assert cfg.dashboard.metric_sections()["application_health"] == (
        "app.health.status",
        "app.health.response_time_ms",
    )
    t = cfg.performance.performance_thresholds()
    assert (t.slow_request_seconds, t.percentiles) == (1.0, (50, 75, 90, 95, 99))
    assert cfg.performance.window == "5m"
    assert cfg.integrations.prometheus.enabled and cfg.integrations.prometheus.port == 8000
    assert cfg.integrations.grafana.dashboard_url == "http://localhost:3000"
    assert cfg.notifications["slack"]["channels"]["critical"] == "#critical-alerts"
    assert cfg.notifications["slack"]["webhook_url"] == "https://hooks.slack.com/services/T/B/x"
    assert "slack" not in cfg.unavailable_channels


def test_example_without_the_slack_variable_has_slack_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No dead-port default: an unset variable switches the channel off (alerts go to the log)."""
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = load_config(EXAMPLE)
    assert "SLACK_WEBHOOK_URL" in cfg.unavailable_channels["slack"]
    assert "slack" not in cfg.notifications


def test_empty_file_has_defaults(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text("")
    cfg = load_config(path)
    assert cfg.store_url == f"sqlite:///{tmp_path.resolve() / 'metrics.db'}"
    assert cfg.rules.alerts == ()
    assert list(cfg.dashboard.metric_sections()) == [
        "system_overview",
        "application_health",
        "performance_metrics",
        "business_metrics",
    ]
    assert load_config().storage.type == "sqlite"


def test_storage_types(tmp_path: Path) -> None:
    def url(text: str) -> str:
        return load_config(tmp_path / "m.yaml", text=text).store_url

    assert url("storage: {type: memory}") == "memory://"
    assert url("storage: {type: parquet, connection_string: data}") == (
        f"parquet://{tmp_path.resolve() / 'data'}"
    )
    assert url("storage: {type: 'postgresql+psycopg://u@h/db'}") == "postgresql+psycopg://u@h/db"


def test_environment_substitution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:1234/hook")
    cfg = load_config(
        tmp_path / "m.yaml",
        text=(
            "notifications:\n  slack:\n    webhook_url: '${SLACK_WEBHOOK_URL}'\n"
            "health_checks:\n  app_url: '${APP:-http://127.0.0.1:5000}'\n"
        ),
    )
    assert cfg.notifications["slack"]["webhook_url"] == "http://127.0.0.1:1234/hook"
    assert cfg.health_checks.app_url == "http://127.0.0.1:5000"


BAD = [
    (
        "missing env var",
        # (in a notification channel it only turns that channel off: test_rules_channels.py)
        "storage:\n  type: sqlite\n  connection_string: '${NOPE_NOT_SET}'\n",
        3,
        "NOPE_NOT_SET is not set",
    ),
    ("malformed yaml", "alerts:\n  system:\n    high_cpu: [1, 2\n", 4, "malformed YAML"),
    ("unknown section", "collection: {}\nstorgae: {}\n", 2, "did you mean 'storage'"),
    (
        "unknown rule key",
        "alerts:\n  system:\n    high_cpu:\n      metric: system.cpu.usage_percent\n"
        "      treshold: 80\n      operator: gt\n",
        5,
        "did you mean 'threshold'",
    ),
    (
        "bad operator",
        "alerts:\n  s:\n    r:\n      metric: a.b\n      threshold: 1\n      operator: greater\n",
        6,
        "operator",
    ),
    (
        "negative duration",
        "alerts:\n  s:\n    r:\n      metric: a.b\n      threshold: 1\n"
        "      operator: gt\n      duration_seconds: -5\n",
        7,
        "duration",
    ),
    (
        "bad metric name",
        "alerts:\n  s:\n    r:\n      metric: 'cpu usage!'\n      threshold: 1\n"
        "      operator: gt\n",
        4,
        "invalid metric name",
    ),
    ("bad storage type", "storage:\n  type: oracle\n", 2, "sqlite, parquet, memory"),
    ("wrong type", "storage:\n  max_records_per_metric: lots\n", 2, "max_records_per_metric"),
    (
        "bad percentile",
        "performance:\n  response_time_tracking:\n    percentiles: [50, 150]\n",
        3,
        "between 0 and 100",
    ),
    ("bad port", "integrations:\n  prometheus:\n    port: 99999\n", 3, "port"),
    (
        "unknown dashboard key",
        "dashboard:\n  sections:\n    mine:\n      metrix: [a.b]\n",
        4,
        "unknown key 'metrix'",
    ),
    (
        "bad enabled metric",
        "collection:\n  enabled_metrics:\n    system: [cpu_usag]\n",
        3,
        "did you mean 'cpu_usage'",
    ),
    ("bad slack channels", "notifications:\n  slack:\n    webhook_url: 'not a url'\n", 3, "slack"),
    ("section not a mapping", "storage: [1, 2]\n", 1, "storage"),
    (
        "duplicate rule",
        "alerts:\n  s:\n    r: {metric: a.b, threshold: 1, operator: gt}\n"
        "    r: {metric: a.b, threshold: 2, operator: gt}\n",
        4,
        "duplicate key",
    ),
]


@pytest.mark.parametrize(("what", "text", "line", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_line(
    tmp_path: Path, what: str, text: str, line: int, message: str
) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.path == str(path), what
    assert err.line == line, f"{what}: {err}"
    assert message in str(err), f"{what}: {err}"
    assert str(err).startswith(f"{path}:{line}: ")


def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each list holds nine aliases of the one before (9**9 values)."""
    names = "abcdefghij"[:levels]
    lines = ["alerts:", f"  {names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = [
    ("alias-bomb", _alias_bomb(), None, "aliases expand to more than"),
    ("recursive-alias-list", "alerts:\n  s: &a [1, *a]\n", 2, "recursive alias"),
    ("recursive-alias-map", "alerts:\n  s: &a\n    r: *a\n", 3, "recursive alias"),
    ("deep-nesting-flow", "alerts: " + "[" * 2000 + "]" * 2000 + "\n", 1, "levels deep"),
    (
        "deep-nesting-block",
        "alerts:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000)),
        None,
        "levels deep",
    ),
    ("huge-integer", "alerts:\n  s:\n    r: {threshold: " + "9" * 5000 + "}\n", 3, "digits"),
    ("impossible-date", "alerts:\n  s:\n    when: 2024-13-45\n", 3, "month must be"),
    (
        "stacked-aliases",
        "alerts:\n"
        + "".join(
            f"  a{i}: &a{i} " + "[" * 40 + (f"*a{i - 1}" if i else "1") + "]" * 40 + "\n"
            for i in range(40)
        ),
        3,
        "levels deep",
    ),
    ("control-character", "alerts:\n  s:\n    r: \x00\n", 3, "special characters"),
]


@pytest.mark.parametrize("kind", ["config", "rules"])
@pytest.mark.parametrize(("what", "text", "line", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_yaml_is_one_config_error_with_file_and_line(
    tmp_path: Path, kind: str, what: str, text: str, line: int | None, message: str
) -> None:
    from metricskit.alerting.rules_model import load_rules

    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    load = load_config if kind == "config" else load_rules
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert message in str(err), f"{what}: {err}"
    assert err.path == str(path) and err.line is not None, f"{what}: {err}"
    if line is not None:
        assert err.line == line, f"{what}: {err}"
    assert str(err).startswith(f"{path}:{err.line}: ")
    assert "\n" not in str(err)


def test_hostile_config_check_prints_one_line(tmp_path: Path) -> None:
    """The CLI (a second process) reports each hostile file in one line, no traceback."""
    import subprocess
    import sys

    for what, text, _, message in HOSTILE:
        path = tmp_path / f"{what}.yaml"
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "metricskit", "config", "check", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 3, (what, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{path}:" in lines[0] and message in lines[0], (
            what,
            result.stderr,
        )


def test_merge_keys_are_expanded_and_located(tmp_path: Path) -> None:
    """``<<: *defaults`` works (it used to be refused) and merged keys keep their lines."""
    from metricskit.alerting.rules_model import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(
        "alerts:\n"
        "  system:\n"
        "    base: &base {metric: system.cpu.usage_percent, operator: gt, threshold: 80}\n"
        "    hot:\n"
        "      <<: *base\n"
        "      threshold: 95\n"
        "    bad:\n"
        "      <<: *base\n"
        "      operator: bigger\n"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert info.value.line == 9, info.value
    path.write_text(path.read_text().replace("bigger", "lt"))
    rules = {r.name: r for r in load_rules(path).alerts}
    assert rules["system.hot"].threshold == 95 and rules["system.hot"].operator == "gt"
    assert rules["system.bad"].operator == "lt"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("alerts:\n  s:\n    r: {metric: a.b, threshold: true, operator: gt}\n", "threshold"),
        (
            "alerts:\n  s:\n    r: {metric: a.b, threshold: 1, operator: gt,\n"
            "        recovery_threshold: false}\n",
            "recovery_threshold",
        ),
        (
            "recording:\n  g:\n    r: {target: a.c, source: a.b, function: rate, scale: true}\n",
            "scale",
        ),
        ("integrations:\n  prometheus: {port: true}\n", "port"),
        ("performance:\n  thresholds: {error_rate_percent: false}\n", "error_rate_percent"),
        ("performance:\n  response_time_tracking: {percentiles: [50, true]}\n", "percentiles"),
        ("storage: {max_records_per_metric: true}\n", "max_records_per_metric"),
        ("collection: {retention_days: true}\n", "retention_days"),
        ("collection: {retention_days: soon}\n", "retention_days"),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path: Path, text: str, where: str) -> None:
    """``threshold: true`` used to be read as 1.0 (issue 11, item 28)."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "m.yaml", text=text)
    assert where in str(info.value) and "number" in str(info.value), info.value
    assert info.value.line is not None and info.value.line > 0


def test_numbers_from_the_environment_still_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROM_PORT", "9100")
    cfg = load_config(
        tmp_path / "m.yaml", text="integrations: {prometheus: {port: '${PROM_PORT}'}}"
    )
    assert cfg.integrations.prometheus.port == 9100


def test_dashboard_section_titles_are_used(tmp_path: Path) -> None:
    """``dashboard.sections.<name>.title`` heads the section (issue 11, item 28)."""
    import json

    from metricskit.report.grafana import dashboard
    from metricskit.service import MonitoringService

    path = tmp_path / "monitoring.yaml"
    path.write_text(
        "storage: {type: memory}\n"
        "dashboard:\n"
        "  sections:\n"
        "    system_overview: {title: 'Box health', metrics: [system.cpu.usage_percent]}\n"
        "    app_stuff: {metrics: [app.health.status]}\n"
    )
    with MonitoringService(path, write_logs=False) as service:
        page = service.reporter.to_html()
        data = json.loads(service.reporter.dashboard_json())
        titles = service.config.dashboard.section_titles()
    assert ">Box health<" in page and ">App Stuff<" in page and "System Overview" not in page
    assert data["titles"] == {"system_overview": "Box health"}
    rows = [
        p["title"]
        for p in dashboard(service.config.dashboard.metric_sections(), section_titles=titles)[
            "panels"
        ]
        if p["type"] == "row"
    ]
    assert rows == ["Box health", "App Stuff"]


# one bad value in each section: (section, text, line, in the message)
EACH_SECTION = [
    ("collection", "collection:\n  interval_seconds: 60\n  intervals:\n    business: -5\n", 4,
     "collection.intervals.business"),
    ("collection", "collection:\n  enabled_metrics:\n    system:\n      - cpu_usage\n"
     "      - cpu_usag\n", 5, "did you mean 'cpu_usage'"),
    ("collection", "collection:\n  enabled_metrics:\n    sytem: []\n", 3,
     "unknown key 'sytem' in collection.enabled_metrics (did you mean 'system'?)"),
    ("collection", "collection:\n  enabled_metrics:\n    system: cpu_usage\n", 3, "list of names"),
    ("storage", "storage:\n  type: sqlite\n  cleanup_enabled: maybe\n", 3,
     "storage.cleanup_enabled"),
    ("alerts", "alerts:\n  s:\n    r:\n      metric: a.b\n      threshold: 1\n"
     "      operator: gt\n      severity: urgent\n", 7, "severity"),
    ("recording", "recording:\n  g:\n    r:\n      target: a.c\n      source: a.b\n"
     "      function: nope\n", 6, "function"),
    ("groups", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'up > 1'\n"
     "        for: soon\n", 6, "for"),
    ("notifications", "notifications:\n  pagerduty: {}\n", 2, "unknown key 'pagerduty'"),
    ("notifications", "notifications:\n  slack:\n    webhook_url: https://h/x\n"
     "    channels:\n      default: '#a'\n      urgent: '#b'\n", 6, "slack.channels.urgent"),
    ("notifications", "notifications:\n  email:\n    recipients:\n      critical:\n"
     "        - admin@example.com\n      warning: [nobody]\n", 6, "email addresses"),
    ("notifications", "notifications:\n  email:\n    recipients: {critical: [a@b]}\n"
     "    starttls: true\n    ssl: true\n", 5, "not both"),
    ("notifications", "notifications:\n  webhook:\n    url: http://127.0.0.1:9/hook\n"
     "    headers:\n      Authorization: [SECRETHDR]\n", 5, "headers.Authorization"),
    ("notifications", "notifications:\n  alertmanager:\n    url: http://127.0.0.1:9093\n"
     "    resolve_timeout_seconds: 0\n", 4, "resolve_timeout_seconds"),
    ("notifications", "notifications:\n  log:\n    path: ''\n", 3, "non-empty string"),
    ("notifications", "notifications:\n  delivery:\n    queue_size: 10\n    attempts: 0\n", 4,
     "delivery.attempts"),
    ("dashboard", "dashboard:\n  window: sometimes\n", 2, "dashboard.window"),
    ("performance", "performance:\n  thresholds:\n    degradation_factor: 1\n", 3,
     "degradation_factor"),
    ("integrations", "integrations:\n  grafana:\n    enabled: perhaps\n", 3,
     "integrations.grafana.enabled"),
    ("debug", "debug:\n  verbose_logging: 7\n", 2, "debug.verbose_logging"),
    ("health_checks", "health_checks:\n  app_url: [1]\n", 2, "health_checks.app_url"),
    ("service", "service:\n  log_dir: logs\n  evaluation_interval_seconds: 0\n", 3,
     "evaluation_interval_seconds"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("section", "text", "line", "message"),
    EACH_SECTION,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(EACH_SECTION)],
)
def test_a_bad_value_in_each_section_names_file_and_line(
    tmp_path: Path, section: str, text: str, line: int, message: str
) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.path, info.value.line) == (str(path), line), f"{section}: {info.value}"
    assert message in str(info.value), info.value
    assert "SECRET" not in str(info.value)


def test_every_section_is_covered_by_a_bad_value() -> None:
    from metricskit.config import SECTIONS

    assert {case[0] for case in EACH_SECTION} == set(SECTIONS)


def test_the_rule_engine_reports_a_bad_channel_with_its_line(tmp_path: Path) -> None:
    """``RuleEngine.from_yaml`` validates ``notifications`` with the loader's model."""
    from metricskit import open_store
    from metricskit.alerting.engine import RuleEngine

    path = tmp_path / "rules.yaml"
    path.write_text(
        "alerts: {}\nnotifications:\n  slack:\n    webhook_url: https://h/x\n    chanels: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        RuleEngine.from_yaml(str(path), open_store("memory://"))
    assert (info.value.path, info.value.line) == (str(path), 5)
    assert "did you mean 'channels'" in str(info.value)


def test_loaded_sections_are_the_models_the_components_take(tmp_path: Path) -> None:
    """A loaded config hands its models to Collector/Notifier as they are; a plain mapping
    (the seed's style) is validated into the same model; both read like the seed's dict."""
    from metricskit import Recorder, open_store
    from metricskit.alerting.channels.config import NotificationsConfig, SlackConfig
    from metricskit.alerting.notify import Notifier
    from metricskit.collect.collector import Collector
    from metricskit.collect.sources.config import CollectionConfig

    cfg = load_config(
        tmp_path / "m.yaml",
        text="collection:\n  interval_seconds: 5m\n  enabled_metrics: {system: [], business: []}\n"
        "  intervals: {application: 30}\n"
        "notifications:\n  slack: {webhook_url: 'https://h/x'}\n  email: {enabled: false}\n",
    )
    assert isinstance(cfg.collection, CollectionConfig)
    assert isinstance(cfg.notifications, NotificationsConfig)
    assert cfg["collection"]["interval_seconds"] == 300.0
    assert cfg.collection.interval("application") == 30.0
    assert "intervals" in cfg["collection"] and "retention_days" not in cfg["collection"]
    assert isinstance(cfg.notifications["slack"], SlackConfig)
    assert "webhook" not in cfg.notifications and cfg.notifications.get("webhook") is None
    # a channel switched off needs none of its keys (email's recipients), as in 0.1
    assert "email" in cfg.notifications and cfg.notifications.email is None
    assert cfg.notifications.channel_names() == ("log", "slack")
    with Notifier.from_config(cfg.notifications, log_dir=tmp_path) as notifier:
        assert list(notifier.channels) == ["log", "slack"]
    store = open_store("memory://")
    with Recorder(store) as rec:
        collector = Collector.from_config(rec, cfg.collection, app_url="http://127.0.0.1:9")
        assert {j.interval_ns for j in collector.sources} == {30 * 10**9}
        collector.close()
        same = Collector.from_config(rec, cfg.collection.model_dump(), app_url="http://127.0.0.1:9")
        assert [j.name for j in same.sources] == [j.name for j in collector.sources]
        same.close()
    store.close()
