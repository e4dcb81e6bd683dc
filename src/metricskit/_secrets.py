"""Keeping credentials out of everything metricskit prints.

A config holds secrets in two shapes: values under a secret-sounding key (``password``,
``api_key``, ``bearer_token``, ``headers``, ``webhook_url``, ``basic_auth``, ...) and
passwords inside URLs (``postgresql://user:pw@host/db``). :func:`redact` returns a copy of
any config value with both hidden; the loaded objects keep the real values, so the
service can still connect and deliver. Store URLs keep their path (which database is
meant); webhook-style URLs keep only their host, because their path is the secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["HIDDEN", "is_secret_key", "redact", "redact_store_url", "redact_url"]

HIDDEN = "<redacted>"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api_?key|auth|credential|cookie|private|headers?$|webhook",
    re.IGNORECASE,
)


def is_secret_key(key: object) -> bool:
    """Whether a config key (``smtp_password``, ``api_key``, ``headers``) holds a secret."""
    return bool(_SECRET_KEY.search(str(key)))


def redact_store_url(url: str) -> str:
    """``postgresql://u:pw@h/db?sslpassword=x`` -> ``postgresql://u:<redacted>@h/db?...``.

    The user, host and path stay (they say which database is meant); the password and
    any secret-named query parameter do not. Text that is not a URL is returned as is.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{HIDDEN}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = urlencode([(k, HIDDEN if is_secret_key(k) else v) for k, v in pairs], safe="<>")
    # by hand, not urlunsplit: that drops the empty host of sqlite:///x.db (-> sqlite:/x.db)
    rest = urlunsplit(("", "", parts.path, query, parts.fragment))
    return f"{parts.scheme}://{netloc}{rest}"


def _hide(value: Any) -> Any:
    """A secret value's stand-in: keys of a mapping stay (header names are useful)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {k: _hide(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hide(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return HIDDEN


def redact(value: Any, key: object = "") -> Any:
    """A copy of config ``value`` (found under ``key``) that is safe to print."""
    if is_secret_key(key):
        return _hide(value)
    if isinstance(value, Mapping):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and "://" in value:
        # a receiver's plain ``url`` (webhook, Alertmanager) may carry its secret in the
        # path, as Slack's does; other URLs (a database) keep theirs
        return redact_url(value) if str(key) == "url" else redact_store_url(value)
    return value


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T/B/x`` -> ``https://hooks.slack.com/<redacted>``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<redacted>"
    if ":" in host:
        host = f"[{host}]"
    rest = "/<redacted>" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"
