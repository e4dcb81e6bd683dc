"""What every notification channel shares: the ABC, delivery errors, redaction, HTTP posting.

A channel turns a batch of :class:`~metricskit.alerting.events.AlertEvent` into one or more
deliveries and raises :class:`DeliveryError` (a
:class:`~metricskit.errors.NotificationError`) when one fails. Whether to try again is
the :class:`~metricskit.alerting.notify.Notifier`'s call, guided by ``DeliveryError.retryable``
and ``DeliveryError.retry_after``.

Secrets (webhook URLs, passwords, auth headers) are never put in an error message, a log
line or a ``repr``: messages from ``requests`` quote the URL, so they pass through
:meth:`Redactor.scrub` and are raised ``from None``.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from metricskit._secrets import redact_url
from metricskit._time import format_duration
from metricskit.alerting.events import AlertEvent, AlertState
from metricskit.errors import DeliveryError

__all__ = [
    "Channel",
    "DeliveryError",
    "Redactor",
    "deliverable",
    "escape_control",
    "event_headline",
    "format_value",
    "parse_retry_after",
    "post_json",
    "redact_url",
    "rfc3339",
]


class Channel(ABC):
    """A place alert events are delivered to (a log file, Slack, email, a webhook, ...).

    ``send`` is called from one worker thread per channel (plus the caller's thread for
    :meth:`~metricskit.alerting.notify.Notifier.test_channels`), delivers the whole batch or raises
    :class:`DeliveryError`; it does not retry, the notifier does.
    """

    #: The name rules route to (``channels: ["slack", "log"]``).
    name: str

    #: Whether the notifier hands this channel pending and inactive events too; a
    #: receiver is told about firing and resolved ones only, a history (the log) keeps all.
    receives_pending: ClassVar[bool] = False

    @abstractmethod
    def send(self, events: Sequence[AlertEvent]) -> None:
        """Deliver ``events``; raise :class:`~metricskit.errors.NotificationError` on failure."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-safe status description with every secret redacted."""

    def close(self) -> None:  # noqa: B027 - most channels hold nothing to release
        """Release what the channel holds (files, connections)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({fields})"


def deliverable(events: Iterable[AlertEvent]) -> list[AlertEvent]:
    """The events a receiver is told about: firing and resolved ones (pending is internal),
    each alert once, in its latest state, where it first appeared in the batch.

    A batch can hold several events of one alert when it fired and resolved (or repeated)
    before the previous send finished; Alertmanager never lists an alert twice in one
    notification, and a receiver shown "firing" and "resolved" together cannot tell
    which is current. The resolved event still says when it fired and at what value.
    """
    latest: dict[tuple[str, str], AlertEvent] = {}
    for e in events:
        if e.state in (AlertState.FIRING, AlertState.RESOLVED):
            latest[(e.rule, e.fingerprint)] = e
    return list(latest.values())


class Redactor:
    """Replaces known secret strings (a URL and its parts, header values) in a message."""

    def __init__(self, url: str | None = None, secrets: Iterable[str] = ()) -> None:
        found: set[str] = {s for s in secrets if s}
        if url:
            found.add(url)
            try:
                parts = urlsplit(url)
            except ValueError:
                parts = None
            if parts is not None:
                # requests quotes "url: /path?query" and the netloc separately.
                if parts.path not in ("", "/"):
                    found.add(parts.path)
                if parts.query:
                    found.add(parts.query)
                if parts.username:
                    found.add(parts.username)
                if parts.password:
                    found.add(parts.password)
        # Longest first so a URL is replaced whole before its path is.
        self._secrets = sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``<redacted>``."""
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def parse_retry_after(value: str | None, now: _dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def post_json(
    url: str,
    payload: Any,
    *,
    what: str,
    redactor: Redactor,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST ``payload`` as JSON; raise :class:`DeliveryError` (secrets scrubbed) unless 2xx.

    Connection errors, timeouts, 408, 429 and 5xx are retryable; other 4xx are not.
    """
    try:
        response = requests.post(url, json=payload, headers=dict(headers or {}), timeout=timeout)
    except requests.Timeout:
        raise DeliveryError(f"{what}: no answer within {timeout:g}s") from None
    except requests.RequestException as exc:
        detail = redactor.scrub(str(exc))
        raise DeliveryError(f"{what}: {type(exc).__name__}: {detail}") from None
    if 200 <= response.status_code < 300:
        return response
    body = redactor.scrub(response.text[:200].strip())
    status = response.status_code
    retryable = status in (408, 429) or status >= 500
    raise DeliveryError(
        f"{what}: HTTP {status} {response.reason or ''}".rstrip() + (f": {body}" if body else ""),
        retryable=retryable,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with milliseconds (``...T12:00:00.000Z``)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1_000_000:03d}Z"


_UNITS = (("_percent", "%"), ("_ms", "ms"), ("_seconds", "s"), ("_bytes", " B"))


def format_value(value: float | None, metric: str = "") -> str:
    """``92.5%`` for ``..._percent``, ``3500ms`` for ``..._ms``: short, with the name's unit."""
    if value is None:
        return "n/a"
    unit = next((u for suffix, u in _UNITS if metric.endswith(suffix)), "")
    return f"{value:.6g}{unit}"


_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "ne": "!="}


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: what can end a line
# or drive a terminal, in a log file, a mail header or a tail -f
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``, ``\\u2028``).

    For every place where tag values, names, summaries or descriptions reach a
    line-oriented sink (the log channel, mail headers, log messages): they may come from
    anywhere, and must not forge a line or a header.
    """
    return _CONTROL.sub(_escape_char, text)


def event_headline(event: AlertEvent) -> str:
    """One line: ``High Memory Usage - system.memory.usage_percent = 92.5%`` plus context.

    Firing: ``(threshold > 90%)``; resolved: firing value, recovery value and how long it
    fired. Whitespace runs in the summary are folded to one space and other control
    characters escaped, so the result stays one line.
    """
    title = escape_control(" ".join((event.summary or event.rule).split()))
    resolved = event.state is AlertState.RESOLVED
    if event.metric:
        text = f"{title} - {event.metric} = {format_value(event.value, event.metric)}"
    else:
        # an expression rule: no metric and no threshold, its summary says what is wrong
        # (and when resolved its series is gone, so there is no current value either)
        text = title if resolved else f"{title} - value {format_value(event.value)}"
    if resolved:
        fired = format_value(event.firing_value, event.metric)
        duration = event.duration_fired_s
        lasted = format_duration(round(duration) * 1_000_000_000) if duration is not None else "?"
        text += f" (was {fired} when it fired; fired for {lasted})"
    elif event.metric:
        op = _OPERATORS.get(event.operator, event.operator)
        text += f" (threshold {op} {format_value(event.threshold, event.metric)})"
    return text


def tags_text(event: AlertEvent) -> str:
    """``host=web1 region=eu`` (empty string when the series has no tags), control
    characters escaped."""
    return escape_control(" ".join(f"{k}={v}" for k, v in event.tags.items_tuple))
