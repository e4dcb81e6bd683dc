"""The HTTP side: ``/metrics``, the Prometheus-compatible query API and the health API.

- :mod:`~metricskit.server.exposition`: the Prometheus text and OpenMetrics formats;
- :mod:`~metricskit.server.app`: :class:`MetricsServer` and the ASGI application that
  users can mount into their own Starlette or FastAPI app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metricskit.server.app import (
        DEFAULT_IDLE_TIMEOUT_S,
        DEFAULT_MAX_CONNECTIONS,
        SECURITY_HEADERS,
        MetricsServer,
        Response,
        Route,
        ServerBindError,
        create_app,
    )

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "SECURITY_HEADERS",
    "MetricsServer",
    "Response",
    "Route",
    "ServerBindError",
    "create_app",
]


def __getattr__(name: str) -> Any:
    # imported on first use, so that importing one module of the package stays cheap
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("metricskit.server.app"), name)
    globals()[name] = value
    return value
