"""A WSGI middleware timing every request.

Plain WSGI has no routing, so the endpoint tag comes from ``endpoint_for(environ)``; the
default is the raw path, kept in check by the Recorder's cardinality limit. Pass a
function mapping paths to templates (or use the Flask integration) when paths carry ids.
Requests from metricskit's own health checks are passed through unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from metricskit.integrations._timing import record_request, wsgi_health_check
from metricskit.recorder import Recorder

__all__ = ["WSGIMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _raw_path(environ: Environ) -> str:
    return str(environ.get("PATH_INFO") or "/")


class WSGIMiddleware:
    """Wrap a WSGI app: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app, recorder)``."""

    def __init__(
        self,
        app: WSGIApp,
        recorder: Recorder,
        *,
        endpoint_for: Callable[[Environ], str | None] = _raw_path,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.endpoint_for = endpoint_for

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run the app, timing until its response body has been produced."""
        if wsgi_health_check(environ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        status = 500

        def capturing_start_response(status_line: str, *args: Any) -> Any:
            nonlocal status
            status = int(status_line.split(" ", 1)[0])
            return start_response(status_line, *args)

        method = str(environ.get("REQUEST_METHOD", "GET"))
        try:
            body = self.app(environ, capturing_start_response)
        except BaseException:
            record_request(self.recorder, self.endpoint_for(environ), method, 500, started)
            raise
        return self._finish_after(body, environ, method, started, lambda: status)

    def _finish_after(
        self,
        body: Iterable[bytes],
        environ: Environ,
        method: str,
        started: float,
        status: Callable[[], int],
    ) -> Iterator[bytes]:
        failed = False
        try:
            yield from body
        except Exception:  # not GeneratorExit: a server closing the body early is no failure
            failed = True
            raise
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            final = 500 if failed else status()
            record_request(self.recorder, self.endpoint_for(environ), method, final, started)
