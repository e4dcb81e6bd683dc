"""Notification channels: where alert events go (log file, Slack, email, webhooks).

Each is a :class:`Channel`; :class:`metricskit.alerting.notify.Notifier` delivers to them off the
caller's thread with retries. See ``docs/notifications.md``.
"""

from __future__ import annotations

from metricskit.alerting.channels.alertmanager import AlertmanagerChannel, WebhookChannel
from metricskit.alerting.channels.base import Channel, DeliveryError, redact_url
from metricskit.alerting.channels.email import EmailChannel
from metricskit.alerting.channels.log import DEFAULT_LOG_PATH, LogChannel
from metricskit.alerting.channels.slack import SlackChannel

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
