"""metricskit: embedded time-series and monitoring for Python.

Record metrics from application code, keep them in SQLite, Parquet or memory (or a
plugin's storage), analyse them with numpy and pandas, alert on them and report on them.

    import metricskit as mk
    store = mk.open_store("sqlite:///metrics.db")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metricskit import _moved
from metricskit._lazy import lazy_exports as _lazy_exports
from metricskit._time import Clock, SystemClock, parse_duration, to_ns
from metricskit.errors import (
    BackendError,
    BackendImportError,
    BackendNotFoundError,
    BackendUnavailableError,
    ConfigError,
    CorruptDataError,
    DeliveryError,
    InvalidArgumentError,
    InvalidDurationError,
    InvalidMetricError,
    MetricsKitError,
    NotificationError,
    QueryError,
    ServerBindError,
    StateError,
    StorageFullError,
)
from metricskit.model import Selector, Series, SeriesKey, Tags
from metricskit.recorder import BoundSeries, Recorder
from metricskit.storage.base import Capabilities, StorageBackend, StorageStats
from metricskit.storage.registry import available_schemes, open_backend, register_backend
from metricskit.store import Store, open_store

if TYPE_CHECKING:
    from metricskit.alerting.engine import ActiveAlert, RuleEngine, Silence
    from metricskit.alerting.events import AlertEvent, AlertState, Severity
    from metricskit.alerting.notify import Notifier
    from metricskit.alerting.rules_model import AlertRule, RecordingRule, RuleSet, load_rules
    from metricskit.collect import sources
    from metricskit.collect.collector import Collector
    from metricskit.collect.derive import Derivation
    from metricskit.config import MonitoringConfig, load_config
    from metricskit.query.performance import PerformanceThresholds
    from metricskit.report.reporter import Reporter, ReportSettings
    from metricskit.service import MonitoringService

# Imported on first use: these pull in SQLAlchemy, requests or pydantic, which an
# application that only records metrics should not pay for at ``import metricskit``.
_LAZY = {
    "ActiveAlert": "metricskit.alerting.engine",
    "AlertEvent": "metricskit.alerting.events",
    "AlertRule": "metricskit.alerting.rules_model",
    "AlertState": "metricskit.alerting.events",
    "Collector": "metricskit.collect.collector",
    "Derivation": "metricskit.collect.derive",
    "MonitoringConfig": "metricskit.config",
    "MonitoringService": "metricskit.service",
    "Notifier": "metricskit.alerting.notify",
    "PerformanceThresholds": "metricskit.query.performance",
    "RecordingRule": "metricskit.alerting.rules_model",
    "ReportSettings": "metricskit.report.reporter",
    "Reporter": "metricskit.report.reporter",
    "RuleEngine": "metricskit.alerting.engine",
    "RuleSet": "metricskit.alerting.rules_model",
    "Severity": "metricskit.alerting.events",
    "Silence": "metricskit.alerting.engine",
    "load_config": "metricskit.config",
    "load_rules": "metricskit.alerting.rules_model",
    "sources": "metricskit.collect.sources",
}


__getattr__ = _lazy_exports(__name__, _LAZY)

_moved.install()

__version__ = "0.1.0"

__all__ = [
    "ActiveAlert",
    "AlertEvent",
    "AlertRule",
    "AlertState",
    "BackendError",
    "BackendImportError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "BoundSeries",
    "Capabilities",
    "Clock",
    "Collector",
    "ConfigError",
    "CorruptDataError",
    "DeliveryError",
    "Derivation",
    "InvalidArgumentError",
    "InvalidDurationError",
    "InvalidMetricError",
    "MetricsKitError",
    "MonitoringConfig",
    "MonitoringService",
    "NotificationError",
    "Notifier",
    "PerformanceThresholds",
    "QueryError",
    "Recorder",
    "RecordingRule",
    "ReportSettings",
    "Reporter",
    "RuleEngine",
    "RuleSet",
    "Selector",
    "Series",
    "SeriesKey",
    "ServerBindError",
    "Severity",
    "Silence",
    "StateError",
    "StorageBackend",
    "StorageFullError",
    "StorageStats",
    "Store",
    "SystemClock",
    "Tags",
    "__version__",
    "available_schemes",
    "load_config",
    "load_rules",
    "open_backend",
    "open_store",
    "parse_duration",
    "register_backend",
    "sources",
    "to_ns",
]
