"""What every middleware does once a request is over: record it, never fail the request.

Requests from metricskit's own HTTP health checks carry :data:`HEALTH_CHECK_HEADER` and
are not recorded: the checker measures them itself (``app.health.*``), and its expected
``401`` from ``/api/auth/me`` would otherwise read as an application error rate.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

from metricskit.errors import MetricsKitError
from metricskit.recorder import Recorder

log = logging.getLogger("metricskit.integrations")

HEALTH_CHECK_HEADER = "X-Metricskit-Health-Check"
"""The header metricskit's HTTP health checks send; the integrations skip such requests.
(Any client could send it to stay out of the request metrics; it hides nothing else.)"""

_WSGI_KEY = "HTTP_" + HEALTH_CHECK_HEADER.upper().replace("-", "_")
_ASGI_NAME = HEALTH_CHECK_HEADER.lower().encode("latin-1")


def wsgi_health_check(environ: dict[str, object]) -> bool:
    """Whether a WSGI request came from metricskit's health checker."""
    return _WSGI_KEY in environ


def asgi_health_check(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an ASGI request (its ``scope["headers"]``) came from the health checker."""
    return any(name.lower() == _ASGI_NAME for name, _ in headers)


def in_health_check_request() -> bool:
    """Whether the current Flask request (if any) came from the health checker.

    For code that records requests without seeing them, such as the seed's
    ``after_request`` hook calling ``MonitoringService.record_request``. Flask is only
    looked at when the application has imported it.
    """
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return False
    return HEALTH_CHECK_HEADER in flask.request.headers


UNMATCHED = "<unmatched>"
"""The endpoint tag of requests no route matched (404s), so stray paths stay one series."""


def record_request(
    recorder: Recorder, endpoint: str | None, method: str, status: int, started: float
) -> None:
    """Record a finished request; a recording problem is logged, never raised into the app."""
    elapsed = time.perf_counter() - started
    try:
        recorder.record_request(endpoint or UNMATCHED, elapsed, status, method=method.upper())
    except MetricsKitError:
        log.warning("could not record request %s %s", method, endpoint, exc_info=True)
