"""The HTTP server: ``/metrics`` for Prometheus, plus any routes a caller adds.

An ASGI application (Starlette) served by uvicorn: one event loop holds every
connection, so idle clients cost a socket each, not a thread. Connections are bounded
(``max_connections``; beyond it requests get 503), a connection that sends nothing for
``idle_timeout`` seconds is closed, and stopping waits for requests in flight, then
closes the rest.

Bound to 127.0.0.1 unless told otherwise (with a warning when bound beyond loopback
without auth, or with auth but without TLS); optional HTTP basic auth or a bearer token
protects every route, and a certificate and key (``tls_certfile``, ``tls_keyfile``) make
it HTTPS only. Every response carries a Content-Security-Policy forbidding scripts and
framing, and X-Frame-Options. :func:`create_app` gives the same application without a
server, to mount in a Starlette or FastAPI app. The dashboard and ``/api/health`` are
added as routes by the layers that own them (reports, the service), so this module
depends only on the store and the exposition format.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import logging
import os
import re
import resource
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response as HTTPResponse
from starlette.routing import Route as _Path
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from metricskit.errors import InvalidArgumentError, ServerBindError
from metricskit.server._prom_api import AlertSource, prom_api_routes
from metricskit.server.exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, generate
from metricskit.store import Store

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

log = logging.getLogger("metricskit.server.app")

DEFAULT_MAX_CONNECTIONS = 1024
"""Open connections served at once; a request beyond them is answered 503."""
DEFAULT_IDLE_TIMEOUT_S = 5.0
"""A connection that sends nothing for this long (before or between requests) is closed."""
_GRACE_S = 5
"""On stop, how long requests in flight may take before they are cancelled."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Sent with every response: the dashboard runs no script and is never framed."""
_RAW_SECURITY_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


@dataclass(frozen=True)
class Response:
    """What a route returns: a status, a content type and the body bytes."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200


Route = Callable[[Mapping[str, str]], Response]
"""A route handler: takes the request headers, returns a :class:`Response`.

It runs in a worker thread, so it may block (read the store, render a page).
"""


def _expected_authorization(
    basic_auth: tuple[str, str] | None, bearer_token: str | None
) -> bytes | None:
    if basic_auth is not None and bearer_token is not None:
        raise InvalidArgumentError("use basic_auth or bearer_token, not both")
    if basic_auth is not None:
        user, password = basic_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {token}".encode()
    if bearer_token is not None:
        return f"Bearer {bearer_token}".encode()
    return None


class _Guard:
    """ASGI middleware: the auth check and the security headers, on every response."""

    def __init__(self, app: ASGIApp, expected: bytes | None) -> None:
        self.app = app
        self.expected = expected
        scheme = "Bearer" if expected is not None and expected.startswith(b"Bearer") else "Basic"
        self.challenge = {"WWW-Authenticate": f'{scheme} realm="metricskit"'}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *_RAW_SECURITY_HEADERS]}
            await send(message)

        if self.expected is not None:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                denied = HTTPResponse(b"unauthorized\n", 401, self.challenge, "text/plain")
                await denied(scope, receive, send_secured)
                return
        await self.app(scope, receive, send_secured)


def _endpoint(path: str, route: Route) -> Callable[[Request], Awaitable[HTTPResponse]]:
    async def endpoint(request: Request) -> HTTPResponse:
        try:
            response = await run_in_threadpool(route, request.headers)
        except Exception:  # a failing route answers 500; the server goes on
            log.exception("route %s failed", path)
            response = Response(b"internal error\n", status=500)
        return HTTPResponse(response.body, response.status, {"Content-Type": response.content_type})

    return endpoint


def _metrics_route(store: Store) -> Route:
    def metrics(headers: Mapping[str, str]) -> Response:
        openmetrics = "application/openmetrics-text" in headers.get("Accept", "")
        body = generate(store, openmetrics=openmetrics)
        return Response(body, CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT)

    return metrics


def create_app(
    store: Store,
    *,
    path: str = "/metrics",
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
    routes: Mapping[str, Route] | None = None,
    alerts: AlertSource | None = None,
) -> Starlette:
    """The ASGI application :class:`MetricsServer` serves: ``/metrics`` at ``path`` plus
    ``routes``, behind the auth and security headers.

    Mount it in your own app: ``app.mount("/monitoring", create_app(store))`` serves
    ``/monitoring/metrics``. ``MonitoringService.asgi_app()`` adds the dashboard and
    ``/api/health``. Prometheus' HTTP API (``/api/v1/query``, ...) is always there;
    ``alerts`` (a rule engine) feeds its ``/api/v1/rules`` and ``/api/v1/alerts``.
    """
    expected = _expected_authorization(basic_auth, bearer_token)
    table = {_normal(path): _metrics_route(store), **(routes or {})}
    return Starlette(
        routes=[
            *(_Path(p, _endpoint(p, r), methods=["GET"]) for p, r in table.items()),
            *prom_api_routes(store, alerts),
        ],
        middleware=[Middleware(_Guard, expected=expected)],
    )


def _normal(path: str) -> str:
    return path if path.startswith("/") else f"/{path}"


class _IdleTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, also timing out a connection that has not sent a whole
    request yet: uvicorn arms its keep-alive timer only after a response, so a client
    that connects and sends nothing (or half a request line) would hold its slot forever.
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        between_requests = self.cycle is None or self.cycle.response_complete
        if self.conn.their_state is h11.IDLE and between_requests:
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        if self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


class _Server(uvicorn.Server):
    """uvicorn's server, telling the starting thread when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """Bind here, in the caller, so a taken port is an error it sees (not a log line in a
    server thread) and ``port=0`` is known at once."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ServerBindError(f"cannot serve on {host}:{port}: {reason.lower()}") from exc


def _check_tls(
    certfile: str | os.PathLike[str] | None, keyfile: str | os.PathLike[str] | None
) -> bool:
    """True when serving HTTPS; a certificate without its key (or the reverse) is refused."""
    if (certfile is None) != (keyfile is None):
        raise InvalidArgumentError("give tls_certfile and tls_keyfile together, or neither")
    return certfile is not None


def _load(config: uvicorn.Config, certfile: Any, keyfile: Any) -> None:
    """Load the config (and so the certificate) here, so that an unreadable or mismatched
    certificate is an error the caller sees, not a log line in the server thread."""
    try:
        config.load()
    except (ssl.SSLError, OSError) as exc:
        text = exc.strerror if isinstance(exc.strerror, str) else str(exc)
        # OpenSSL's "[X509: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:3926)"
        reason = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text).lower()
        raise InvalidArgumentError(
            f"cannot serve HTTPS with certificate {os.fspath(certfile)} and key "
            f"{os.fspath(keyfile)}: {reason}"
        ) from exc


def _raise_open_files_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` sockets (besides the store's files), within the hard
    limit: a soft limit of 1024 is common and would refuse connections well before
    ``max_connections``."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted + 256 if hard == resource.RLIM_INFINITY else min(hard, wanted + 256)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class MetricsServer:
    """Serve ``/metrics`` (and extra routes) from a store in a background thread.

    ``MetricsServer(store, port=8000).start()``; ``server.url``; ``server.stop()``.
    ``port=0`` picks a free port. ``basic_auth=("user", "secret")`` or
    ``bearer_token="..."`` require credentials on every request. ``max_connections`` and
    ``idle_timeout`` (seconds) bound what clients can hold open. ``tls_certfile`` and
    ``tls_keyfile`` (PEM files, both or neither) serve HTTPS instead of HTTP. A taken port
    raises :class:`ServerBindError`, and a certificate that cannot be loaded
    :class:`~metricskit.errors.InvalidArgumentError`, here, not later.
    """

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/metrics",
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        routes: Mapping[str, Route] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
        alerts: AlertSource | None = None,
        tls_certfile: str | os.PathLike[str] | None = None,
        tls_keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_connections < 1 or idle_timeout <= 0:
            raise InvalidArgumentError("max_connections must be >= 1 and idle_timeout > 0")
        self.tls = _check_tls(tls_certfile, tls_keyfile)
        """True when the server speaks HTTPS."""
        self.store = store
        self.path = _normal(path)
        self._expected_auth = _expected_authorization(basic_auth, bearer_token)
        self.app = create_app(
            store,
            path=self.path,
            basic_auth=basic_auth,
            bearer_token=bearer_token,
            routes=routes,
            alerts=alerts,
        )
        """The ASGI application served (see :func:`create_app`)."""
        self.routes: dict[str, Route] = {self.path: _metrics_route(store), **(routes or {})}
        config = uvicorn.Config(
            self.app,
            http=_IdleTimeoutH11,
            ws="none",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=max_connections,
            timeout_keep_alive=max(1, round(idle_timeout)),
            timeout_graceful_shutdown=_GRACE_S,
            ssl_certfile=tls_certfile,
            ssl_keyfile=tls_keyfile,
        )
        if self.tls:
            _load(config, tls_certfile, tls_keyfile)
        _raise_open_files_limit(max_connections)
        self._socket = _listen(host, port, backlog=min(max_connections, 2048))
        self._server = _Server(config)
        self._thread: threading.Thread | None = None
        if _is_loopback(self._socket.getsockname()[0]):
            return
        if self._expected_auth is None:
            log.warning(
                "serving %s beyond loopback without auth: anyone who can reach it reads your "
                "metrics and dashboard; set integrations.prometheus.basic_auth or bearer_token",
                self.url,
            )
        elif not self.tls:
            log.warning(
                "serving %s to the network with auth but without TLS: the credentials cross "
                "it in clear; set integrations.prometheus.tls_certfile and tls_keyfile",
                self.url,
            )

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (``https://`` with TLS)."""
        host = str(self._socket.getsockname()[0])
        scheme = "https" if self.tls else "http"
        return (
            f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"
        )

    def start(self) -> MetricsServer:
        """Serve in a daemon thread; returns self once it accepts connections."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name="metricskit-server",
                daemon=True,
            )
            self._thread.start()
            while not self._server.ready.wait(0.05):
                if not self._thread.is_alive():
                    raise ServerBindError(f"the server at {self.url} failed to start; see the log")
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread) or a
        signal: in the main thread, SIGINT and SIGTERM stop it gracefully."""
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (a few seconds at most), close."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_GRACE_S + 5)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def authorized(self, header: str | None) -> bool:
        """True if the ``Authorization`` header satisfies the configured protection."""
        if self._expected_auth is None:
            return True
        return header is not None and hmac.compare_digest(header.encode(), self._expected_auth)
