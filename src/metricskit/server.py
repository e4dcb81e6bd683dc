"""A small HTTP server: ``/metrics`` for Prometheus, plus any routes a caller adds.

Bound to 127.0.0.1 unless told otherwise; optional HTTP basic auth or a bearer token
protects every route. The dashboard and ``/api/health`` are added as routes by the layers
that own them (reports, the service), so this module depends only on the store and the
exposition format.
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from metricskit.exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, generate
from metricskit.store import Store

__all__ = ["MetricsServer", "Response", "Route"]

log = logging.getLogger("metricskit.server")


@dataclass(frozen=True)
class Response:
    """What a route returns: a status, a content type and the body bytes."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200


Route = Callable[[Mapping[str, str]], Response]
"""A route handler: takes the request headers, returns a :class:`Response`."""


class MetricsServer:
    """Serve ``/metrics`` (and extra routes) from a store in a background thread.

    ``MetricsServer(store, port=8000).start()``; ``server.url``; ``server.stop()``.
    ``port=0`` picks a free port. ``basic_auth=("user", "secret")`` or
    ``bearer_token="..."`` require credentials on every request.
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
    ) -> None:
        if basic_auth is not None and bearer_token is not None:
            raise ValueError("use basic_auth or bearer_token, not both")
        self.store = store
        self.path = path if path.startswith("/") else f"/{path}"
        self.routes: dict[str, Route] = {self.path: self._metrics, **(routes or {})}
        self._expected_auth = _expected_authorization(basic_auth, bearer_token)
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = self._httpd.server_address[0]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{self.port}"

    def add_route(self, path: str, handler: Route) -> None:
        """Serve ``handler`` at ``path`` (exact match)."""
        self.routes[path] = handler

    def start(self) -> MetricsServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="metricskit-server", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (or Ctrl-C)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def authorized(self, header: str | None) -> bool:
        """True if the ``Authorization`` header satisfies the configured protection."""
        if self._expected_auth is None:
            return True
        return header is not None and hmac.compare_digest(header.encode(), self._expected_auth)

    def _metrics(self, headers: Mapping[str, str]) -> Response:
        openmetrics = "application/openmetrics-text" in headers.get("Accept", "")
        body = generate(self.store, openmetrics=openmetrics)
        return Response(body, CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT)


def _expected_authorization(
    basic_auth: tuple[str, str] | None, bearer_token: str | None
) -> bytes | None:
    if basic_auth is not None:
        user, password = basic_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {token}".encode()
    if bearer_token is not None:
        return f"Bearer {bearer_token}".encode()
    return None


def _make_handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "metricskit"

        def do_GET(self) -> None:
            if not server.authorized(self.headers.get("Authorization")):
                self._send(
                    Response(b"unauthorized\n", status=HTTPStatus.UNAUTHORIZED),
                    {"WWW-Authenticate": 'Basic realm="metricskit"'},
                )
                return
            route = server.routes.get(urlsplit(self.path).path)
            if route is None:
                self._send(Response(b"not found\n", status=HTTPStatus.NOT_FOUND))
                return
            try:
                response = route(dict(self.headers.items()))
            except Exception:  # a failing route must answer 500, not kill the server thread
                log.exception("route %s failed", self.path)
                response = Response(b"internal error\n", status=HTTPStatus.INTERNAL_SERVER_ERROR)
            self._send(response)

        def _send(self, response: Response, extra: Mapping[str, str] | None = None) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return Handler
