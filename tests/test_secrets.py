"""Credentials set in a config never show up in anything metricskit prints (issue 11, item 21).

Every secret-bearing field gets a distinctive value; the test then collects everything a
user or a log can see (repr/str of the config and its sections, config errors, the CLI's
``config check``/``health``/``status`` output, the service's log files, its status and
health JSON, the dashboard HTML) and greps it all for those values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from metricskit.config import load_config
from metricskit.errors import ConfigError
from metricskit.model import Series, SeriesKey
from metricskit.service import MonitoringService
from tests.services import POSTGRES_URL, require_database

SECRETS = {
    "STORE_PW": "StorePw5ecret",
    "DB_PW": "DbPw5ecret",
    "SLACK_PATH": "SlackPath5ecret",
    "SMTP_PW": "SmtpPw5ecret",
    "HOOK_PATH": "HookPath5ecret",
    "HOOK_HEADER": "HookHeader5ecret",
    "AM_PW": "AmPw5ecret",
    "AM_HEADER": "AmHeader5ecret",
    "GRAFANA_KEY": "GrafanaKey5ecret",
    "PROM_PW": "PromPw5ecret",
    "PROM_TOKEN": "PromToken5ecret",
}


def _with_password(url: str, password: str) -> str:
    """``scheme://user@host`` -> ``scheme://user:password@host`` (trust auth ignores it)."""
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{password}@{host}"


def _config(store: str) -> str:
    return f"""
storage: {{type: '{store}'}}
health_checks:
  database_url: '{_with_password(POSTGRES_URL, "${DB_PW}")}'
collection: {{interval_seconds: 60}}
alerts:
  system:
    always:
      metric: system.cpu.usage_percent
      threshold: 0
      operator: gte
      duration_seconds: 0
      severity: critical
notifications:
  delivery: {{attempts: 1}}
  slack: {{webhook_url: 'http://127.0.0.1:9/services/T0/B0/${{SLACK_PATH}}'}}
  email:
    smtp_host: 127.0.0.1
    smtp_port: 9
    username: monitor
    password: '${{SMTP_PW}}'
    recipients: {{critical: [ops@example.com]}}
  webhook:
    url: 'http://127.0.0.1:9/hook/${{HOOK_PATH}}'
    headers: {{Authorization: 'Bearer ${{HOOK_HEADER}}'}}
  alertmanager:
    url: 'http://am:${{AM_PW}}@127.0.0.1:9/'
    headers: {{X-Scope-Token: '${{AM_HEADER}}'}}
integrations:
  grafana: {{api_key: '${{GRAFANA_KEY}}'}}
  prometheus:
    basic_auth: {{username: prom, password: '${{PROM_PW}}'}}
    bearer_token: '${{PROM_TOKEN}}'
"""


def _assert_clean(where: str, text: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"{where} shows {leaked}:\n{text}"


def _cli(cwd: Path, config: Path, *args: str) -> str:
    env = {**os.environ, **SECRETS}
    result = subprocess.run(
        [sys.executable, "-m", "metricskit", *args, "--config", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return result.stdout + result.stderr


def test_no_secret_is_printed_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_database(POSTGRES_URL)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # the store is a real PostgreSQL URL with a password only where nothing connects to it
    pg_store = tmp_path / "pg.yaml"
    pg_store.write_text(_config(_with_password(POSTGRES_URL, "${STORE_PW}")))
    path = tmp_path / "monitoring.yaml"
    path.write_text(_config(f"sqlite:///{tmp_path / 'metrics.db'}"))

    cfg = load_config(pg_store)
    # the values stay usable where they are needed
    assert SECRETS["STORE_PW"] in cfg.store_url
    assert SECRETS["SMTP_PW"] == cfg.notifications["email"]["password"]
    assert cfg.integrations.grafana.api_key == SECRETS["GRAFANA_KEY"]
    seen = {"repr(config)": repr(cfg), "str(config)": str(cfg)}
    for section in ("storage", "integrations", "health_checks"):
        seen[f"repr({section})"] = repr(getattr(cfg, section))
        seen[f"str({section})"] = str(getattr(cfg, section))
    seen["config check"] = _cli(tmp_path, pg_store, "config", "check")
    assert "ok:" in seen["config check"] and "<redacted>" in seen["config check"]

    # a bad value in a secret field is reported without echoing it
    for bad in (
        f"integrations: {{grafana: {{api_key: [{SECRETS['GRAFANA_KEY']}]}}}}\n",
        f"health_checks: {{database_url: ['postgresql://u:{SECRETS['DB_PW']}@h/db']}}\n",
        f"storage: {{type: 'nosuch://u:{SECRETS['STORE_PW']}@h/db', cleanup_enabled: 3}}\n",
        "integrations: {prometheus: {basic_auth: {username: u, password: [PromPw5ecret]}}}\n",
    ):
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / "bad.yaml", text=bad)
        seen[f"error for {bad!r}"] = str(info.value)

    # a running service: collection (the database check connects), a firing alert whose
    # deliveries all fail (nothing listens on port 9), logs, status, health, dashboard
    with MonitoringService(path) as service:
        now = service.clock.now_ns()
        service.store.write(
            [Series(SeriesKey.of("system.cpu.usage_percent"), np.array([now]), np.array([50.0]))]
        )
        service.start_monitoring(interval=3600)
        assert service.collector is not None
        service.collector.collect_once()
        service.engine.evaluate()
        assert service.reporter.active_alerts(), "the rule should fire"
        service.notifier.flush(timeout=30)
        status_file = service.config.log_dir / service.config.service.status_file
        deadline = time.monotonic() + 60
        while not status_file.exists():  # housekeeping writes it within a second
            assert time.monotonic() < deadline, "no status file"
            time.sleep(0.05)
        seen["status"] = json.dumps(service.get_monitoring_status(), default=str)
        seen["health report"] = json.dumps(service.generate_health_report(), default=str)
        seen["dashboard"] = service.reporter.to_html()
        service.stop_monitoring()
    for log in sorted(tmp_path.rglob("*.log")) + sorted(tmp_path.rglob("*.json")):
        seen[str(log)] = log.read_text()
    assert any("monitoring.log" in name for name in seen), sorted(seen)
    seen["cli health"] = _cli(tmp_path, path, "health", "--output", "json")
    seen["cli status"] = _cli(tmp_path, path, "status")

    assert "<redacted>" in "".join(seen.values())
    for where, text in seen.items():
        _assert_clean(where, text)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////var/lib/m/metrics.db", "sqlite:////var/lib/m/metrics.db"),
        ("sqlite:///metrics.db", "sqlite:///metrics.db"),
        ("memory://", "memory://"),
        ("parquet:///data/m", "parquet:///data/m"),
        ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:<redacted>@h:5432/db"),
        ("sqlite:///m.db?password=pw&x=1", "sqlite:///m.db?password=<redacted>&x=1"),
    ],
)
def test_a_redacted_store_url_is_still_the_same_url(url: str, shown: str) -> None:
    # config check prints it; `sqlite:/x.db` (the empty host dropped) names no store
    from metricskit._secrets import redact_store_url

    assert redact_store_url(url) == shown
