"""``monitoring.yaml``: load, substitute ``${VAR}``, validate every section, with lines.

Every section of the seed's file is read and checked: ``collection``, ``storage``,
``alerts`` (and ``recording``), ``notifications``, ``dashboard``, ``performance``,
``integrations`` and ``debug``; metricskit adds ``health_checks`` (what the collector
checks) and ``service`` (where logs and the pid file go). Each section is a
:class:`~metricskit._validation.ConfigSection` model owned by the code that uses it:
``collection`` in :mod:`metricskit.collect.sources.config`, ``notifications`` in
:mod:`metricskit.alerting.channels.config`, the rules in
:mod:`metricskit.alerting.rules_model`, the rest here; :func:`parse_config` assembles
them. An empty file is a valid config: every key has a default. Any problem is one
:class:`~metricskit.errors.ConfigError` naming the file and line
(``monitoring.yaml:12: unknown key 'treshold' in alerts.system.high_cpu (did you mean
'threshold'?)``).

``${VAR}`` and ``${VAR:-default}`` in any string value come from the environment; a
variable that is not set (and has no default) is an error naming it, except in a
notification channel's section: that channel is then off (``config check`` and the
service warn, its rules notify through the ``log`` channel). Relative paths
(the SQLite file, Parquet directory, log directory) are taken relative to the config
file's directory, as Prometheus does.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from metricskit._env import substitute_env
from metricskit._secrets import redact
from metricskit._time import parse_duration
from metricskit._validation import ConfigSection, Integer, Number, field_error, validate_section
from metricskit._yaml import YamlDocument, load_yaml, load_yaml_text
from metricskit.alerting.channels.config import CHANNEL_SECTIONS, NotificationsConfig
from metricskit.alerting.notify import routing_warnings
from metricskit.alerting.rules_model import RuleSet, parse_rules
from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS
from metricskit.collect.sources.config import CollectionConfig
from metricskit.errors import UnknownSectionError
from metricskit.model import validate_name
from metricskit.query.performance import PerformanceThresholds

__all__ = [
    "CollectionConfig",
    "DashboardConfig",
    "DebugConfig",
    "HealthChecksConfig",
    "IntegrationsConfig",
    "MonitoringConfig",
    "NotificationsConfig",
    "PerformanceConfig",
    "ServiceConfig",
    "StorageConfig",
    "load_config",
]


class StorageConfig(ConfigSection):
    """``storage:`` — which store, and how big it may grow."""

    type: str = "sqlite"
    """``sqlite``, ``parquet``, ``memory``, or a store URL (``postgresql+psycopg://...``)."""
    connection_string: str = "metrics.db"
    """The SQLite file or Parquet directory (relative to the config file), or a URL."""
    cleanup_enabled: bool = True
    """Delete samples older than ``collection.retention_days`` as the service runs."""
    max_records_per_metric: Integer | None = Field(default=None, gt=0)
    """Keep at most this many samples per series, dropping the oldest."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in ("sqlite", "parquet", "memory") and "://" not in v:
            raise ValueError("use sqlite, parquet, memory or a store URL such as 'memory://'")
        return v

    def url(self, base_dir: Path) -> str:
        """The store URL this section names, relative paths resolved against ``base_dir``."""
        if "://" in self.type:
            return self.type
        if "://" in self.connection_string:
            return self.connection_string
        if self.type == "memory":
            return "memory://"
        location = (base_dir / self.connection_string).resolve()
        # SQLAlchemy: sqlite:/// + absolute path; parquet:// + absolute path
        return f"sqlite:///{location}" if self.type == "sqlite" else f"parquet://{location}"


class DashboardSection(ConfigSection):
    """One dashboard section: its metrics (and an optional title)."""

    title: str | None = None
    metrics: tuple[str, ...] = ()

    @field_validator("metrics")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            validate_name(name)
        return v


class DashboardConfig(ConfigSection):
    """``dashboard:`` — sections of metrics to chart; the seed's four by default."""

    sections: dict[str, DashboardSection] = Field(
        default_factory=lambda: {
            name: DashboardSection(metrics=metrics)
            for name, metrics in DEFAULT_DASHBOARD_SECTIONS.items()
        }
    )
    window: str = "1h"

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_duration(v)  # a bad duration raises InvalidDurationError, a ValueError
        return v

    def metric_sections(self) -> dict[str, tuple[str, ...]]:
        """``{section: metrics}`` as the Reporter takes them."""
        return {name: section.metrics for name, section in self.sections.items()}

    def section_titles(self) -> dict[str, str]:
        """``{section: title}`` for the sections given a ``title``."""
        return {name: s.title for name, s in self.sections.items() if s.title is not None}


class ResponseTimeTracking(ConfigSection):
    """``performance.response_time_tracking``."""

    slow_request_threshold_ms: Number = Field(default=1000.0, gt=0)
    percentiles: tuple[Number, ...] = (50, 75, 90, 95, 99)

    @field_validator("percentiles")
    @classmethod
    def _in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [p for p in v if not 0 < p <= 100]
        if bad or not v:
            raise ValueError(f"percentiles must be between 0 and 100, got {list(v)}")
        return v


class ErrorTracking(ConfigSection):
    """``performance.error_tracking``."""

    error_rate_window_minutes: Number = Field(default=5.0, gt=0)
    track_error_details: bool = True


class PerformanceLimits(ConfigSection):
    """``performance.thresholds``: when request performance is an issue (seed defaults)."""

    mean_response_seconds: Number = Field(default=2.0, gt=0)
    error_rate_percent: Number = Field(default=5.0, ge=0, le=100)
    p95_response_seconds: Number = Field(default=5.0, gt=0)
    degradation_factor: Number = Field(default=2.0, gt=1)
    baseline_windows: Integer = Field(default=6, ge=0)
    min_requests: Integer = Field(default=10, ge=1)


class PerformanceConfig(ConfigSection):
    """``performance:`` — request tracking figures and issue thresholds."""

    response_time_tracking: ResponseTimeTracking = ResponseTimeTracking()
    error_tracking: ErrorTracking = ErrorTracking()
    thresholds: PerformanceLimits = PerformanceLimits()

    def performance_thresholds(self) -> PerformanceThresholds:
        """The :class:`PerformanceThresholds` this section describes."""
        t = self.thresholds
        return PerformanceThresholds(
            mean_seconds=t.mean_response_seconds,
            error_rate=t.error_rate_percent / 100,
            p95_seconds=t.p95_response_seconds,
            degradation_factor=t.degradation_factor,
            baseline_windows=t.baseline_windows,
            min_requests=t.min_requests,
            slow_request_seconds=self.response_time_tracking.slow_request_threshold_ms / 1000,
            percentiles=self.response_time_tracking.percentiles,
        )

    @property
    def window(self) -> str:
        """The window request figures are computed over."""
        return f"{self.error_tracking.error_rate_window_minutes:g}m"


class BasicAuth(ConfigSection):
    """Credentials for HTTP basic auth."""

    username: str
    password: str = Field(repr=False)


class PrometheusIntegration(ConfigSection):
    """``integrations.prometheus``: the ``/metrics`` endpoint."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Integer = Field(default=8000, ge=0, le=65535)
    path: str = "/metrics"
    basic_auth: BasicAuth | None = None
    bearer_token: str | None = Field(default=None, repr=False)
    tls_certfile: str | None = None
    """A PEM certificate (chain): with ``tls_keyfile``, serve HTTPS instead of HTTP."""
    tls_keyfile: str | None = None
    """The certificate's PEM private key (relative paths: to the config file)."""

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("path must start with '/'")
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> PrometheusIntegration:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            given, other = (
                ("tls_certfile", "tls_keyfile")
                if self.tls_keyfile is None
                else ("tls_keyfile", "tls_certfile")
            )
            message = f"{given} needs {other} too (both or neither)"
            raise field_error(given, message)
        return self


class GrafanaIntegration(ConfigSection):
    """``integrations.grafana``: the dashboard ``metricskit grafana export`` writes, and
    where it pushes it (Grafana's HTTP API) when enabled."""

    enabled: bool = False
    """Push the dashboard to ``dashboard_url`` on ``metricskit grafana export``."""
    dashboard_url: str | None = None
    """Grafana's base URL, e.g. ``http://localhost:3000``."""
    api_key: str | None = Field(default=None, repr=False)
    """A Grafana service-account token (use ``${GRAFANA_API_KEY}``)."""
    title: str = "metricskit"


class IntegrationsConfig(ConfigSection):
    """``integrations:``."""

    prometheus: PrometheusIntegration = PrometheusIntegration()
    grafana: GrafanaIntegration = GrafanaIntegration()


class DebugConfig(ConfigSection):
    """``debug:`` — ``enabled``/``verbose_logging`` log at DEBUG; ``performance_profiling``
    logs how long each collection and evaluation took."""

    enabled: bool = False
    verbose_logging: bool = False
    performance_profiling: bool = False


class HealthChecksConfig(ConfigSection):
    """``health_checks:`` — the application and database the collector checks."""

    app_url: str | None = None
    """Base URL of the app; its ``/api/health``, ``/`` and ``/api/auth/me`` are checked."""
    database_url: str | None = None
    """SQLAlchemy URL of the app's database (``postgresql+psycopg://...``)."""


class ServiceConfig(ConfigSection):
    """``service:`` — where the monitoring service writes its files."""

    log_dir: str = "."
    pid_file: str = "monitoring.pid"
    status_file: str = "monitoring_status.json"
    evaluation_interval_seconds: Number | None = Field(default=None, gt=0)
    """How often alert rules run; defaults to ``collection.interval_seconds``."""
    host_tag: bool | str = False
    """Tag every recorded series with ``host`` (``true``: the hostname; or a name), so
    several hosts can share one store."""


_MODELS: dict[str, type[ConfigSection]] = {
    "collection": CollectionConfig,
    "notifications": NotificationsConfig,
    "storage": StorageConfig,
    "dashboard": DashboardConfig,
    "performance": PerformanceConfig,
    "integrations": IntegrationsConfig,
    "debug": DebugConfig,
    "health_checks": HealthChecksConfig,
    "service": ServiceConfig,
}
# the rules' sections, validated by metricskit.alerting.rules_model
_RULE_SECTIONS = ("alerts", "recording", "groups")
SECTIONS = ("collection", *_RULE_SECTIONS, *(name for name in _MODELS if name != "collection"))


@dataclass(frozen=True, repr=False)
class MonitoringConfig:
    """A validated ``monitoring.yaml``; its ``repr()`` shows every credential redacted."""

    path: str | None
    base_dir: Path
    collection: CollectionConfig
    storage: StorageConfig
    rules: RuleSet
    notifications: NotificationsConfig
    dashboard: DashboardConfig
    performance: PerformanceConfig
    integrations: IntegrationsConfig
    debug: DebugConfig
    health_checks: HealthChecksConfig
    service: ServiceConfig
    unavailable_channels: Mapping[str, str] = dataclass_field(default_factory=dict)
    """Notification channels left off because a variable they use is not set, with why."""
    warnings: tuple[str, ...] = ()
    """Problems that do not stop the config from loading (channels off or missing), with
    ``file:line``; ``config check`` prints them and the service logs them once."""

    @property
    def store_url(self) -> str:
        """The store URL (relative paths resolved against the config's directory)."""
        return self.storage.url(self.base_dir)

    @property
    def interval_seconds(self) -> float:
        """The collection interval (seed default 60 s)."""
        return self.collection.interval_seconds

    @property
    def retention_days(self) -> float | None:
        """Samples older than this are deleted when ``storage.cleanup_enabled``."""
        return self.collection.retention_days if self.storage.cleanup_enabled else None

    def __repr__(self) -> str:
        fields = (
            f"{f.name}={redact(getattr(self, f.name), f.name)!r}" for f in dataclasses.fields(self)
        )
        return f"MonitoringConfig({', '.join(fields)})"

    def __getitem__(self, section: str) -> Any:
        """``config["collection"]``: the section as its attribute holds it.

        Code written for the seed's plain YAML dict reads sections this way, so it works
        here too; ``alerts`` and ``recording`` give the rule tuples of ``config.rules``.
        """
        if section in ("alerts", "recording"):
            return getattr(self.rules, section)
        if section == "groups":  # Prometheus rule groups: their rules are in config.rules
            return self.rules
        if section in SECTIONS:
            return getattr(self, section)
        near = difflib.get_close_matches(str(section), SECTIONS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownSectionError(f"no config section {section!r}{hint}; known: {list(SECTIONS)}")

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to its directory."""
        return (self.base_dir / path).resolve()

    @property
    def log_dir(self) -> Path:
        """Where ``monitoring.log`` and ``monitoring_alerts.log`` go."""
        return self.resolve(self.service.log_dir)


def parse_config(doc: YamlDocument) -> MonitoringConfig:
    """Validate a loaded document into a :class:`MonitoringConfig`."""
    raw = doc.data if doc.data is not None else {}
    if not isinstance(raw, dict):
        raise doc.error(f"the config must be a mapping of sections, not {type(raw).__name__}")
    for key in raw:
        if key not in SECTIONS:
            hint = difflib.get_close_matches(str(key), SECTIONS, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise doc.error(f"unknown section {key!r}{did}; known: {', '.join(SECTIONS)}", (key,))
    substituted, unavailable = substitute_env(doc, channels=CHANNEL_SECTIONS)
    data: dict[str, Any] = substituted.data or {}
    sections: dict[str, Any] = {
        n: validate_section(m, data.get(n), (n,), doc) for n, m in _MODELS.items()
    }
    rules = parse_rules(substituted)
    notifications: NotificationsConfig = sections["notifications"]
    warnings = routing_warnings(rules.alerts, notifications.channel_names(), unavailable, doc=doc)
    return MonitoringConfig(
        path=doc.path,
        base_dir=Path(doc.path).resolve().parent if doc.path else Path.cwd(),
        rules=rules,
        **sections,
        unavailable_channels=unavailable,
        warnings=tuple(warnings),
    )


def load_config(
    path: str | os.PathLike[str] | None = None, *, text: str | None = None
) -> MonitoringConfig:
    """Load and validate ``monitoring.yaml`` (or YAML ``text``); ``None`` gives the defaults."""
    if text is not None:
        return parse_config(load_yaml_text(text, os.fspath(path) if path else None))
    if path is None:
        return parse_config(load_yaml_text("", None))
    return parse_config(load_yaml(path))
