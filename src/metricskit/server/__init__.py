"""The HTTP side: ``/metrics``, the Prometheus-compatible query API and the health API.

- :mod:`~metricskit.server.exposition`: the Prometheus text and OpenMetrics formats;
- :mod:`~metricskit.server.app`: :class:`MetricsServer` and the ASGI application that
  users can mount into their own Starlette or FastAPI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metricskit._lazy import lazy_exports as _lazy_exports

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

__getattr__ = _lazy_exports(__name__, dict.fromkeys(__all__, "metricskit.server.app"))
