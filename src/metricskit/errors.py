"""Every error metricskit raises, rooted at :class:`MetricsKitError`.

Each error also subclasses the builtin that existing ``except`` clauses expect, so
``except ValueError`` still catches a bad metric name::

    MetricsKitError
     ├── InvalidMetricError      (ValueError)    bad metric name, tag key/value or sample value
     ├── InvalidDurationError    (ValueError)    "5x" where a duration like "5m" was expected
     ├── ConfigError             (ValueError)    a config or rule file, with its path and line
     │    └── UnknownSectionError    (KeyError)        config["name"] of a section that cannot exist
     ├── QueryError              (ValueError)    a query that cannot be answered as asked
     ├── InvalidArgumentError    (ValueError)    an argument out of range or clashing with another
     ├── StateError              (RuntimeError)  a call the object's state forbids (already running)
     ├── ServerBindError         (OSError)       the HTTP server cannot listen on its address
     ├── BackendError                            anything a storage backend could not do
     │    ├── BackendNotFoundError   (LookupError)     unknown URL scheme; lists the known ones
     │    ├── BackendImportError     (ImportError)     the backend's optional dependency is missing
     │    ├── BackendUnavailableError (ConnectionError) the server or file cannot be reached
     │    ├── CorruptDataError                         a stored file cannot be read; names the file
     │    └── StorageFullError       (OSError)         the disk or quota is full
     └── NotificationError                       a channel could not deliver
          └── DeliveryError                        one delivery failed; says if a retry can help

Backends translate their drivers' exceptions (SQLAlchemy, pyarrow, ``OSError``) into
:class:`BackendError` subclasses at their boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

import errno

__all__ = [
    "BackendError",
    "BackendImportError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "ConfigError",
    "CorruptDataError",
    "DeliveryError",
    "InvalidArgumentError",
    "InvalidDurationError",
    "InvalidMetricError",
    "MetricsKitError",
    "NotificationError",
    "QueryError",
    "ServerBindError",
    "StateError",
    "StorageFullError",
    "UnknownSectionError",
    "backend_error_from_oserror",
]


class MetricsKitError(Exception):
    """The root of every error metricskit raises."""


class InvalidMetricError(MetricsKitError, ValueError):
    """A metric name, tag key, tag value or sample value is not acceptable."""


class InvalidDurationError(MetricsKitError, ValueError):
    """A duration string or number could not be understood."""


class QueryError(MetricsKitError, ValueError):
    """A query is malformed (unknown statistic, bad range, ...)."""


class InvalidArgumentError(MetricsKitError, ValueError):
    """An argument is out of range (``interval=0``) or conflicts with another one."""


class StateError(MetricsKitError, RuntimeError):
    """The call is not allowed in the object's current state (e.g. it is already running)."""


class ServerBindError(MetricsKitError, OSError):
    """The server could not listen on its address (port taken, no such address, ...)."""


class ConfigError(MetricsKitError, ValueError):
    """A configuration or rule file is invalid.

    ``path`` and ``line`` (1-based) point at the offending place when known; ``str(err)``
    reads ``monitoring.yaml:12: unknown key 'treshold' in alerts.system.high_cpu``.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class UnknownSectionError(ConfigError, KeyError):
    """``config[name]`` for a section a monitoring.yaml cannot have."""

    def __str__(self) -> str:
        return self.message  # not KeyError's repr() of it


class BackendError(MetricsKitError):
    """A storage backend failed to carry out an operation."""


class BackendNotFoundError(BackendError, LookupError):
    """No backend is registered for a URL scheme."""


class BackendImportError(BackendError, ImportError):
    """A backend's optional dependency is not installed; the message says what to install."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend's server or storage location cannot be reached right now."""


class CorruptDataError(BackendError):
    """Stored data cannot be decoded; the message names the file or table."""


class StorageFullError(BackendError, OSError):
    """The disk or quota holding the store is full; nothing was written."""


class NotificationError(MetricsKitError):
    """A notification channel could not deliver a message."""


class DeliveryError(NotificationError):
    """One delivery failed; says whether retrying can help and how long the receiver asked to wait.

    ``retryable`` is False for answers that will not change on retry (a 400, a refused
    login). ``retry_after`` is the receiver's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def backend_error_from_oserror(exc: OSError, what: str) -> BackendError:
    """Translate an ``OSError`` met while doing ``what`` into the matching backend error."""
    if exc.errno in _FULL_ERRNOS:
        return StorageFullError(exc.errno, f"{what}: storage is full ({exc.strerror})")
    return BackendError(f"{what}: {exc}")
