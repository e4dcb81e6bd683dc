"""Request-timing middleware for web frameworks: Flask, plain WSGI and ASGI.

Each records ``http.request.duration_seconds`` through
:meth:`metricskit.recorder.Recorder.record_request`, tagged with the route template (not
the raw path, so ``/users/<id>`` stays one series), the method and the status. An
exception in the handler is recorded as a 500 and still propagates. Requests that carry
:data:`HEALTH_CHECK_HEADER` (metricskit's own health checks) are not recorded.
"""

from metricskit.integrations._timing import HEALTH_CHECK_HEADER
from metricskit.integrations.asgi import ASGIMiddleware
from metricskit.integrations.wsgi import WSGIMiddleware

__all__ = ["HEALTH_CHECK_HEADER", "ASGIMiddleware", "WSGIMiddleware"]
