"""The ``slack`` channel: a Slack incoming-webhook POST with ``text`` and ``blocks``.

Per-severity channels follow the seed's config::

    slack:
      webhook_url: "${SLACK_WEBHOOK_URL}"
      channels: {default: "#alerts", critical: "#critical-alerts"}

Events of a batch are grouped by their target channel (severity's, else ``default``),
one POST per group. The webhook URL is a secret and only its host is ever shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metricskit._validation import validate_section
from metricskit.alerting.channels.base import (
    Channel,
    Redactor,
    deliverable,
    escape_control,
    event_headline,
    post_json,
    redact_url,
    tags_text,
)
from metricskit.alerting.channels.config import SlackConfig
from metricskit.alerting.events import AlertEvent, AlertState, Severity

__all__ = ["SlackChannel", "slack_payload"]

# Slack rejects messages with more than 50 blocks; keep one for the "and N more" note.
_MAX_EVENT_BLOCKS = 48

_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}


def _line(event: AlertEvent) -> str:
    mark = ":white_check_mark:" if event.state is AlertState.RESOLVED else _EMOJI[event.severity]
    test = "[TEST] " if event.is_test else ""
    tags = tags_text(event)
    where = f" ({tags})" if tags else ""
    return (
        f"{mark} {test}*[{event.state.value.upper()}] {event.severity.value.upper()}* "
        f"{event_headline(event)}{where}"
    )


def slack_payload(events: Sequence[AlertEvent], channel: str | None) -> dict[str, Any]:
    """The webhook JSON for ``events``: a plain ``text`` fallback plus one block per event."""
    lines = [_line(e) for e in events]
    blocks: list[dict[str, Any]] = []
    for event, line in zip(events[:_MAX_EVENT_BLOCKS], lines, strict=False):
        text = line
        if event.description and event.state is not AlertState.RESOLVED:
            text += f"\n{event.description}"
        text += f"\n_rule_ `{escape_control(event.rule)}`"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if len(events) > _MAX_EVENT_BLOCKS:
        more = len(events) - _MAX_EVENT_BLOCKS
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"... and {more} more"}]}
        )
    payload: dict[str, Any] = {"text": "\n".join(lines)[:39000], "blocks": blocks}
    if channel:
        payload["channel"] = channel
    return payload


class SlackChannel(Channel):
    """Posts alerts to a Slack incoming webhook."""

    def __init__(
        self,
        webhook_url: str,
        *,
        channels: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        name: str = "slack",
    ) -> None:
        self.name = name
        self._url = webhook_url
        self.channels = dict(channels or {})
        self.timeout = timeout
        self._redactor = Redactor(webhook_url)

    @classmethod
    def from_config(cls, config: SlackConfig | Mapping[str, Any]) -> SlackChannel:
        """Build from ``notifications.slack``: ``{webhook_url, channels, timeout_seconds}``."""
        c = validate_section(SlackConfig, config, ("notifications", "slack"))
        return cls(c.webhook_url, channels=c.channels, timeout=c.timeout_seconds)

    def channel_for(self, severity: Severity) -> str | None:
        """The Slack channel for ``severity``: its own entry, else ``default``, else None."""
        return self.channels.get(severity.value, self.channels.get("default"))

    def send(self, events: Sequence[AlertEvent]) -> None:
        """One POST per target Slack channel; the first failure raises."""
        groups: dict[str | None, list[AlertEvent]] = {}
        for event in deliverable(events):
            groups.setdefault(self.channel_for(event.severity), []).append(event)
        for channel, group in groups.items():
            post_json(
                self._url,
                slack_payload(group, channel),
                what=f"slack ({redact_url(self._url)})",
                redactor=self._redactor,
                timeout=self.timeout,
            )

    def describe(self) -> dict[str, Any]:
        """Type, redacted webhook URL, channel map."""
        return {"type": "slack", "webhook_url": redact_url(self._url), "channels": self.channels}
