"""An ASGI middleware timing every HTTP request (Starlette, FastAPI, any ASGI app).

The endpoint tag is the matched route's template when the framework puts the route in
the scope (Starlette and FastAPI set ``scope["route"]``), else the raw path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from metricskit.integrations._timing import UNMATCHED, asgi_health_check, record_request
from metricskit.recorder import Recorder

__all__ = ["ASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, if the framework recorded one in the scope."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    return None


class ASGIMiddleware:
    """Wrap an ASGI app: ``app.add_middleware(ASGIMiddleware, recorder=rec)`` in Starlette."""

    def __init__(self, app: ASGIApp, recorder: Recorder, *, raw_path_fallback: bool = False):
        self.app = app
        self.recorder = recorder
        self.raw_path_fallback = raw_path_fallback
        """Use the raw path when no route matched, instead of ``<unmatched>``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time HTTP requests; pass lifespan, websocket and health-check traffic through."""
        if scope["type"] != "http" or asgi_health_check(scope.get("headers") or ()):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capturing_send)
        except BaseException:
            status = 500
            raise
        finally:
            endpoint = route_template(scope)
            if endpoint is None:
                endpoint = str(scope.get("path") or "/") if self.raw_path_fallback else UNMATCHED
            record_request(
                self.recorder, endpoint, str(scope.get("method", "GET")), status, started
            )
