"""HTTP to the remote server: one session, retries with backoff, errors as BackendError.

What is retried: connection failures, timeouts, 429 and 5xx (a server restarting, a
receiver shedding load). What is not: other 4xx, which mean the request itself is wrong
(a rejected sample, a disabled admin API) and would fail the same way again; they raise
:class:`~metricskit.errors.BackendError` with the server's own message. When the retries
run out the error is :class:`~metricskit.errors.BackendUnavailableError`; the Recorder
keeps such a batch in its bounded buffer and tries again later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
from metricskit.errors import BackendError, BackendUnavailableError

__all__ = ["HTTPClient", "RequestRejected"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RequestRejected(BackendError):
    """The server answered a request with a non-retryable 4xx; ``status`` holds the code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HTTPClient:
    """A ``requests`` session bound to one server, with bounded retries.

    ``retries`` is how many times a failed attempt is repeated (so ``retries + 1``
    attempts); the wait before attempt ``n`` is ``backoff * 2**(n-1)`` seconds, capped at
    ``max_backoff``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = requests.Session()
        if headers:
            self.session.headers.update(headers)
        if auth is not None:
            self.session.auth = auth

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request, retrying what may succeed later; ``what`` names it in errors."""
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure = f"{what}: cannot reach {self.base_url} ({type(exc).__name__}: {exc})"
                cause: Exception = exc
            except requests.RequestException as exc:
                raise BackendError(f"{what}: request to {url} failed: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                message = f"{what}: {url} answered {response.status_code}: {_body(response)}"
                if response.status_code not in _RETRY_STATUS:
                    raise RequestRejected(message, response.status_code)
                failure, cause = message, BackendError(message)
            if attempt >= self.retries:
                raise BackendUnavailableError(
                    f"{failure}; gave up after {attempt + 1} attempts"
                ) from cause
            time.sleep(min(self.max_backoff, self.backoff * 2**attempt))
            attempt += 1

    def close(self) -> None:
        """Release the pooled connections."""
        self.session.close()


def _body(response: requests.Response) -> str:
    text = response.text.strip()
    return text[:500] + ("..." if len(text) > 500 else "") if text else "(empty body)"
