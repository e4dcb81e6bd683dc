"""metricskit: embedded time-series and monitoring for Python.

Record metrics from application code, keep them in SQLite, Parquet or memory (or a
plugin's storage), analyse them with numpy and pandas, alert on them and report on them.

    import metricskit as mk
    store = mk.open_store("sqlite:///metrics.db")
"""

from __future__ import annotations

from metricskit._time import Clock, SystemClock, parse_duration, to_ns
from metricskit.errors import (
    BackendError,
    BackendImportError,
    BackendNotFoundError,
    BackendUnavailableError,
    ConfigError,
    CorruptDataError,
    InvalidDurationError,
    InvalidMetricError,
    MetricsKitError,
    NotificationError,
    QueryError,
    StorageFullError,
)
from metricskit.model import Selector, Series, SeriesKey, Tags
from metricskit.storage.base import Capabilities, StorageBackend, StorageStats
from metricskit.storage.registry import available_schemes, open_backend, register_backend
from metricskit.store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendImportError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "Capabilities",
    "Clock",
    "ConfigError",
    "CorruptDataError",
    "InvalidDurationError",
    "InvalidMetricError",
    "MetricsKitError",
    "NotificationError",
    "QueryError",
    "Selector",
    "Series",
    "SeriesKey",
    "StorageBackend",
    "StorageFullError",
    "StorageStats",
    "Store",
    "SystemClock",
    "Tags",
    "__version__",
    "available_schemes",
    "open_backend",
    "open_store",
    "parse_duration",
    "register_backend",
    "to_ns",
]
