"""Notification channels: where alert events go (log file, Slack, email, webhooks).

Each is a :class:`Channel`; :class:`metricskit.notify.Notifier` delivers to them off the
caller's thread with retries. See ``docs/notifications.md``.
"""

from __future__ import annotations

from metricskit.channels.alertmanager import AlertmanagerChannel, WebhookChannel
from metricskit.channels.base import Channel, DeliveryError, redact_url
from metricskit.channels.email import EmailChannel
from metricskit.channels.log import DEFAULT_LOG_PATH, LogChannel
from metricskit.channels.slack import SlackChannel

__all__ = [
    "DEFAULT_LOG_PATH",
    "AlertmanagerChannel",
    "Channel",
    "DeliveryError",
    "EmailChannel",
    "LogChannel",
    "SlackChannel",
    "WebhookChannel",
    "redact_url",
]
