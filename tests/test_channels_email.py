"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from metricskit.alerting.channels import DeliveryError, EmailChannel
from metricskit.alerting.events import AlertState, Severity
from metricskit.alerting.notify import Notifier, RetryPolicy
from tests.services import free_port
from tests.test_channels_http import make_event


class Inbox:
    """aiosmtpd handler keeping every envelope; can refuse with a scripted SMTP reply."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse_with: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_with:
            return self.refuse_with.pop(0)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"s3cret!")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,  # loopback only; TLS needs a certificate this test lacks
    )
    controller.start()
    yield inbox, port
    controller.stop()


RECIPIENTS = {"critical": ["admin@example.com"], "warning": ["dev@example.com", "ops@example.com"]}


def test_one_message_per_recipient_set(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    channel = EmailChannel(
        RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port, sender="alerts@example.com"
    )
    channel.send(
        [
            make_event("system.high_memory", severity=Severity.CRITICAL),
            make_event("app.slow_response", severity=Severity.WARNING),
            make_event("app.errors", severity=Severity.WARNING, state=AlertState.RESOLVED),
            make_event("app.note", severity=Severity.INFO),  # no recipients for info
        ]
    )
    assert len(inbox.messages) == 2
    by_to = {tuple(rcpts): (sender, msg) for sender, rcpts, msg in inbox.messages}
    sender, critical = by_to[("admin@example.com",)]
    assert sender == "alerts@example.com"
    assert critical["Subject"] == "[CRITICAL] FIRING: system.high_memory"
    body = critical.get_content()
    assert "High Memory Usage - system.memory.usage_percent = 92.5%" in body
    assert "tags:   host=web1" in body
    _, warning = by_to[("dev@example.com", "ops@example.com")]
    assert warning["Subject"] == "[WARNING] FIRING: app.slow_response (+1 more)"
    assert warning["To"] == "dev@example.com, ops@example.com"
    assert "was 92.5% when it fired" in warning.get_content()


def test_login_and_refused_login_keeps_the_password_secret(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    good = EmailChannel(
        RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port, username="bot", password="s3cret!"
    )
    good.send([make_event()])
    assert len(inbox.messages) == 1
    bad = EmailChannel(
        RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port, username="bot", password="WRONGPASS"
    )
    with pytest.raises(DeliveryError) as info:
        bad.send([make_event()])
    assert "login refused (535)" in str(info.value)
    assert not info.value.retryable
    assert "WRONGPASS" not in str(info.value) + repr(bad) + repr(bad.describe())
    assert bad.describe()["login"] is True


def test_temporary_smtp_failure_is_retried_by_the_notifier(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    inbox.refuse_with = ["451 try again later"]
    channel = EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port)
    with Notifier([channel], retry=RetryPolicy(3, 0.001, 0.001)) as notifier:
        notifier.notify([make_event(channels=("email",))])
        assert notifier.flush(30)
        assert notifier.stats()["email"] == {
            "sent": 1, "failed": 0, "dropped": 0, "retries": 1, "queued": 0, "in_flight": 0
        }  # fmt: skip
    assert len(inbox.messages) == 1


def test_permanent_smtp_failure_is_not_retried(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    inbox.refuse_with = ["554 rejected"]
    channel = EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port)
    with pytest.raises(DeliveryError, match="554 rejected") as info:
        channel.send([make_event()])
    assert not info.value.retryable


def test_test_event_goes_to_every_recipient_and_closed_port_errors(
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    with Notifier([EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port)]) as ok:
        assert ok.test_channels() == {"email": "ok"}
    (_, rcpts, msg) = inbox.messages[0]
    assert sorted(rcpts) == ["admin@example.com", "dev@example.com", "ops@example.com"]
    assert msg["Subject"].startswith("[TEST] [INFO] FIRING: metricskit.test_alert")
    down = EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=free_port())
    with Notifier([down]) as failing:
        result = failing.test_channels()["email"]
    assert result.startswith("error: email (smtp://127.0.0.1:")
    assert "refused" in result.lower()


def test_an_alert_fired_and_resolved_in_one_batch_is_mailed_once(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    channel = EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port)
    with Notifier([channel]) as notifier:
        # a batch as a slow SMTP server leaves it: the same alert fired, then resolved
        notifier.notify(
            [
                make_event("system.high_memory", channels=("email",)),
                make_event("system.high_memory", state=AlertState.RESOLVED, channels=("email",)),
            ]
        )
        assert notifier.flush(30)
    bodies = [msg.get_content() for _, _, msg in inbox.messages]
    assert sum(body.count("rule:   system.high_memory") for body in bodies) == 1
    (_, _, last) = inbox.messages[-1]
    assert last["Subject"] == "[CRITICAL] RESOLVED: system.high_memory"


def test_control_characters_cannot_add_headers_or_forge_body_lines(
    smtp: tuple[Inbox, int],
) -> None:
    import dataclasses

    from metricskit.model import Tags

    inbox, port = smtp
    event = dataclasses.replace(
        make_event(),
        rule="system.high_memory\r\nBcc: evil@example.com",
        tags=Tags._trusted((("host", "web1\r\nBcc: evil@example.com\n  rule:   forged"),)),
        description="line one\nline two\x1b[2J",
    )
    EmailChannel(RECIPIENTS, smtp_host="127.0.0.1", smtp_port=port).send([event])
    ((_, rcpts, msg),) = inbox.messages
    assert rcpts == ["admin@example.com"] and msg["Bcc"] is None
    assert msg["Subject"] == "[CRITICAL] FIRING: system.high_memory\\r\\nBcc: evil@example.com"
    body = msg.get_content().replace("\r\n", "\n")  # SMTP's line ends
    assert "\x1b" not in body
    assert "  tags:   host=web1\\r\\nBcc: evil@example.com\\n  rule:   forged\n" in body
    # a description keeps its lines, indented under its event
    assert "  line one\n  line two\\x1b[2J\n" in body
