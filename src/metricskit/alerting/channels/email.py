"""The ``email`` channel: plain-text mail over SMTP (smtplib), recipients per severity.

    email:
      recipients: {critical: ["admin@example.com"], warning: ["dev@example.com"]}
      smtp_host: localhost
      smtp_port: 25
      sender: metricskit@example.com
      username: ...          # optional login
      password: ...
      starttls: false        # or ssl: true (SMTPS), not both

A batch becomes one message per distinct recipient list, all sent over one connection.
A severity with no list uses ``default`` when given, else that event is not emailed.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from metricskit._validation import validate_section
from metricskit.alerting.channels.base import (
    Channel,
    DeliveryError,
    Redactor,
    deliverable,
    escape_control,
    event_headline,
    rfc3339,
    tags_text,
)
from metricskit.alerting.channels.config import EmailConfig
from metricskit.alerting.events import AlertEvent, AlertState, Severity
from metricskit.errors import InvalidArgumentError

__all__ = ["EmailChannel", "build_message"]


def _subject(events: Sequence[AlertEvent]) -> str:
    worst = max(events, key=lambda e: (e.state is AlertState.FIRING, e.severity.rank))
    test = "[TEST] " if worst.is_test else ""
    more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
    rule = escape_control(worst.rule)  # a line break in a header would start a new header
    return f"{test}[{worst.severity.value.upper()}] {worst.state.value.upper()}: {rule}{more}"


def _body(events: Sequence[AlertEvent]) -> str:
    parts = []
    for e in events:
        lines = [
            f"[{e.state.value.upper()} {e.severity.value}] {event_headline(e)}",
            f"  rule:   {escape_control(e.rule)}",
            f"  at:     {rfc3339(e.at_ns)}",
        ]
        if e.tags:
            lines.append(f"  tags:   {tags_text(e)}")
        if e.description:
            # its own lines stay lines, indented under the event, so none reads as a field
            lines += (f"  {escape_control(line)}" for line in e.description.splitlines())
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n\n-- \nmetricskit alerting\n"


def build_message(
    sender: str, recipients: Sequence[str], events: Sequence[AlertEvent]
) -> EmailMessage:
    """The message for one recipient list: subject names the worst severity and its rule."""
    msg = EmailMessage()
    msg["Subject"] = _subject(events)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(_body(events))
    return msg


class EmailChannel(Channel):
    """Sends alert mail through an SMTP server (plain, STARTTLS or SMTPS; login optional)."""

    def __init__(
        self,
        recipients: Mapping[str, Sequence[str]],
        *,
        smtp_host: str = "localhost",
        smtp_port: int | None = None,
        sender: str = "metricskit@localhost",
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 10.0,
        name: str = "email",
    ) -> None:
        if starttls and use_ssl:
            raise InvalidArgumentError("email: choose starttls or ssl, not both")
        self.name = name
        self.recipients = {k.lower(): tuple(v) for k, v in recipients.items()}
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port if smtp_port is not None else (465 if use_ssl else 25)
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self._redactor = Redactor(secrets=[password] if password else [])

    @classmethod
    def from_config(cls, config: EmailConfig | Mapping[str, Any]) -> EmailChannel:
        """Build from ``notifications.email``; see the module docstring for the keys."""
        c = validate_section(EmailConfig, config, ("notifications", "email"))
        return cls(
            c.recipients,
            smtp_host=c.smtp_host,
            smtp_port=c.smtp_port,
            sender=c.sender,
            username=c.username,
            password=c.password,
            starttls=c.starttls,
            use_ssl=c.ssl,
            timeout=c.timeout_seconds,
        )

    def recipients_for(self, severity: Severity) -> tuple[str, ...]:
        """The addresses for ``severity``: its own list, else ``default``, else none."""
        return self.recipients.get(severity.value, self.recipients.get("default", ()))

    def _everyone(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for group in self.recipients.values() for a in group))

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.smtp_host, self.smtp_port, timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
        if self.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if self.username is not None and self._password is not None:
            smtp.login(self.username, self._password)
        return smtp

    def send(self, events: Sequence[AlertEvent]) -> None:
        """One message per distinct recipient list, over one SMTP connection."""
        groups: dict[tuple[str, ...], list[AlertEvent]] = {}
        for event in deliverable(events):
            # A test event checks the whole channel, so it goes to every configured address.
            to = self._everyone() if event.is_test else self.recipients_for(event.severity)
            if to:
                groups.setdefault(to, []).append(event)
        if not groups:
            return
        where = f"email (smtp://{self.smtp_host}:{self.smtp_port})"
        try:
            with self._connect() as smtp:
                for to, group in groups.items():
                    smtp.send_message(build_message(self.sender, to, group), self.sender, list(to))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{where}: login refused ({exc.smtp_code})", retryable=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            # 4xx is the server's "try again later"; 5xx will not change on retry.
            detail = self._redactor.scrub(_decode(exc.smtp_error))
            raise DeliveryError(
                f"{where}: {exc.smtp_code} {detail}", retryable=400 <= exc.smtp_code < 500
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            raise DeliveryError(
                f"{where}: recipients refused: {refused}", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError, timeouts are OSErrors
            detail = self._redactor.scrub(str(exc)) or type(exc).__name__
            raise DeliveryError(f"{where}: {detail}") from None

    def describe(self) -> dict[str, Any]:
        """Server, sender, recipients and TLS mode; the password is never shown."""
        return {
            "type": "email",
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "sender": self.sender,
            "recipients": {k: list(v) for k, v in self.recipients.items()},
            "tls": "ssl" if self.use_ssl else ("starttls" if self.starttls else "none"),
            "login": self.username is not None,
        }


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
