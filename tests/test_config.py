from pathlib import Path

import pytest

from metricskit.config import load_config
from metricskit.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "examples" / "monitoring.yaml"


def test_example_with_every_seed_key_loads() -> None:
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
