"""The ``notifications:`` section: one model per channel, and ``delivery``.

::

    notifications:
      log: {path: monitoring_alerts.log}          # always on
      slack:
        webhook_url: "${SLACK_WEBHOOK_URL}"
        channels: {default: "#alerts", critical: "#critical-alerts"}
      email:
        recipients: {critical: ["admin@example.com"]}
      webhook: {url: "http://127.0.0.1:9000/hook"}
      alertmanager: {url: "http://127.0.0.1:9093"}
      delivery: {attempts: 4, base_delay_seconds: 0.5}

Every channel may say ``enabled: false``. A channel whose ``${VAR}`` is not set is left
out before validation (see :mod:`metricskit._env`), so its model is ``None`` here as if
the file had not named it. Messages about a bad value never show a secret: a webhook
URL shows its host only, a header's or a password's value not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from metricskit._validation import ConfigSection, Integer, NonEmptyString, Number, field_error
from metricskit.alerting.events import Severity

__all__ = [
    "CHANNEL_SECTIONS",
    "DEFAULT_LOG_PATH",
    "AlertmanagerConfig",
    "ChannelConfig",
    "DeliveryConfig",
    "EmailConfig",
    "LogConfig",
    "NotificationsConfig",
    "SlackConfig",
    "WebhookConfig",
]

DEFAULT_LOG_PATH = "monitoring_alerts.log"


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        hint = " (is the environment variable it names set?)" if "${" in value else ""
        raise ValueError(f"must be an http:// or https:// URL with a host{hint}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An ``http://`` or ``https://`` URL with a host."""


def _severity_key(value: str) -> str:
    if value == "default":
        return value
    try:
        return Severity.from_str(value).value
    except ValueError:
        raise ValueError("must be 'default' or a severity (info, warning, critical)") from None


SeverityKey = Annotated[str, AfterValidator(_severity_key)]
"""``default`` or a severity (``info``, ``warning``, ``critical``; any case)."""


def _addresses(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(a, str) and "@" in a for a in value
    ):
        raise ValueError("must be a list of email addresses")
    return tuple(value)


Addresses = Annotated[tuple[str, ...], BeforeValidator(_addresses)]
"""A list of email addresses (one address alone reads too)."""


def _port(value: int | None) -> int | None:
    if value is not None and not 0 < value < 65536:
        raise ValueError("must be a port number (1-65535)")
    return value


class ChannelConfig(ConfigSection):
    """What every channel that sends over the network has."""

    enabled: bool = True
    """``false`` turns the channel off."""
    timeout_seconds: Number = Field(default=10.0, gt=0)
    """Network timeout of one delivery."""


class LogConfig(ConfigSection):
    """``notifications.log``: the file alert events are appended to (always on)."""

    enabled: bool = True
    """Accepted, but ignored: the log channel always exists."""
    path: NonEmptyString = DEFAULT_LOG_PATH
    """The file; a relative path is taken under ``service.log_dir``."""


class SlackConfig(ChannelConfig):
    """``notifications.slack``: a Slack incoming webhook."""

    webhook_url: HttpUrl = Field(repr=False)
    channels: dict[SeverityKey, NonEmptyString] = Field(default_factory=dict)
    """Slack channel per severity, ``default`` for the rest."""


class EmailConfig(ChannelConfig):
    """``notifications.email``: plain-text mail over SMTP, recipients per severity."""

    recipients: dict[SeverityKey, Addresses]
    smtp_host: NonEmptyString = "localhost"
    smtp_port: Annotated[Integer | None, AfterValidator(_port)] = None
    """``None``: 25, or 465 with ``ssl``."""
    sender: NonEmptyString = "metricskit@localhost"
    username: NonEmptyString | None = None
    password: NonEmptyString | None = Field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        if not self.recipients:
            raise field_error("recipients", "is required: a mapping of severity to addresses")
        if self.starttls and self.ssl:
            raise field_error("ssl", "choose starttls or ssl, not both")
        if (self.username is None) != (self.password is None):
            raise field_error("password", "username and password go together")
        return self


class _HttpChannelConfig(ChannelConfig):
    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra HTTP headers (their values are secrets: ``Authorization``)."""


class WebhookConfig(_HttpChannelConfig):
    """``notifications.webhook``: Alertmanager's webhook payload POSTed to any URL."""

    receiver: NonEmptyString = "metricskit"
    external_url: str = ""
    max_alerts: Integer = Field(default=0, ge=0)
    """Alerts per post past which the rest are truncated; 0 is no limit."""


class AlertmanagerConfig(_HttpChannelConfig):
    """``notifications.alertmanager``: alerts pushed to an Alertmanager's API."""

    generator_url: HttpUrl | None = None
    resolve_timeout_seconds: Number | None = Field(default=None, ge=1)


class DeliveryConfig(ConfigSection):
    """``notifications.delivery``: retries and queues, shared by every channel."""

    enabled: bool = True
    """Accepted, but ignored: delivery settings always apply."""
    attempts: Integer = Field(default=4, ge=1)
    base_delay_seconds: Number = Field(default=0.5, ge=0)
    max_delay_seconds: Number = Field(default=30.0, ge=0)
    max_retry_after_seconds: Number = Field(default=300.0, ge=0)
    queue_size: Integer = Field(default=1000, ge=1)
    batch_size: Integer = Field(default=100, ge=1)


class NotificationsConfig(ConfigSection):
    """``notifications:`` — where alert events are delivered; ``log`` always is."""

    log: LogConfig = LogConfig()
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="before")
    @classmethod
    def _switched_off(cls, data: Any) -> Any:
        # ``email: {enabled: false}`` turns a channel off without the keys it would need
        # to send (as in 0.1): such a section is left unread, as if not written
        if not isinstance(data, Mapping):
            return data
        return {
            key: None if key in CHANNEL_SECTIONS and _says_off(value) else value
            for key, value in data.items()
        }

    def enabled_channels(self) -> dict[str, ChannelConfig]:
        """The network channels configured and not ``enabled: false``, by name."""
        found = {name: getattr(self, name) for name in CHANNEL_SECTIONS}
        return {name: c for name, c in found.items() if c is not None and c.enabled}

    def channel_names(self) -> tuple[str, ...]:
        """The channels a notifier built from this section has: ``log`` and the enabled."""
        return ("log", *self.enabled_channels())


def _is_channel(annotation: Any) -> bool:
    kinds = get_args(annotation) or (annotation,)
    return any(isinstance(k, type) and issubclass(k, ChannelConfig) for k in kinds)


CHANNEL_SECTIONS: tuple[str, ...] = tuple(
    name
    for name, field in NotificationsConfig.model_fields.items()
    if _is_channel(field.annotation)
)
"""The ``notifications`` keys that are network channels (``slack``, ``email``, ...): the
fields of :class:`NotificationsConfig` holding a :class:`ChannelConfig`, so that a new
channel model is one field here. ``${VAR}`` substitution (:mod:`metricskit._env`) is told
these names: an unset variable inside one switches that channel off."""


def _says_off(section: Any) -> bool:
    return isinstance(section, Mapping) and section.get("enabled") is False
