"""Prometheus-ecosystem channels: ``webhook`` (Alertmanager's webhook payload, version 4)
and ``alertmanager`` (``POST /api/v2/alerts``).

Both describe an event with the same labels and annotations. An alert of a rule from a
Prometheus ``groups:`` file is described as Prometheus describes it: its labels (the
result series' and the rule's) with ``alertname`` = the rule's ``alert:`` name, and the
rule's annotations, templated. The seed's rules':

- labels: ``alertname`` (the rule, e.g. ``system.high_cpu``), ``severity``, ``metric``
  (the metric name, dotted as stored) and the series' tags. A tag whose key collides with
  one of these is sent as ``exported_<key>``, Prometheus' convention for clashes.
- annotations: ``summary``, ``description`` (when set), ``value``, ``threshold``,
  ``operator``, and for resolved alerts ``firing_value``; ``test: "true"`` for test events.

Tag keys are identifiers not starting with ``__`` (enforced by the data model), so they are
valid Prometheus label names as they are; label values may be any UTF-8 string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metricskit._validation import validate_section
from metricskit.alerting.channels.base import (
    Channel,
    Redactor,
    deliverable,
    post_json,
    redact_url,
    rfc3339,
)
from metricskit.alerting.channels.config import AlertmanagerConfig, WebhookConfig
from metricskit.alerting.events import AlertEvent, AlertState

__all__ = [
    "AlertmanagerChannel",
    "WebhookChannel",
    "alert_annotations",
    "alert_labels",
    "webhook_payload",
]

_RESERVED = ("alertname", "severity", "metric")
# What Alertmanager itself sends as endsAt for an alert that has not ended.
_ZERO_TIME = "0001-01-01T00:00:00Z"


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """The Prometheus labels identifying ``event``'s alert."""
    if event.alertname is not None:  # as Prometheus: alertname overrides a tag of that name
        return {**dict(event.tags.items_tuple), "alertname": event.alertname}
    labels = {"alertname": event.rule, "severity": event.severity.value, "metric": event.metric}
    for key, value in event.tags.items_tuple:
        labels[f"exported_{key}" if key in _RESERVED else key] = value
    return labels


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    """Human-facing details; values are strings as Alertmanager requires."""
    if event.alertname is not None:
        return dict(event.annotations)
    notes = {
        "summary": event.summary or event.rule,
        "value": repr(event.value),
        "threshold": repr(event.threshold),
        "operator": event.operator,
    }
    if event.description:
        notes["description"] = event.description
    if event.state is AlertState.RESOLVED and event.firing_value is not None:
        notes["firing_value"] = repr(event.firing_value)
    if event.is_test:
        notes["test"] = "true"
    return notes


def _starts_ns(event: AlertEvent) -> int:
    return event.fired_at_ns if event.fired_at_ns is not None else event.at_ns


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first = dict(maps[0]) if maps else {}
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(
    events: Sequence[AlertEvent],
    *,
    receiver: str,
    external_url: str = "",
    generator_url: str = "",
    max_alerts: int = 0,
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group of events (one rule)."""
    alerts: list[dict[str, Any]] = []
    labels: list[dict[str, str]] = []
    notes: list[dict[str, str]] = []
    for e in events:
        resolved = e.state is AlertState.RESOLVED
        labels.append(alert_labels(e))
        notes.append(alert_annotations(e))
        alerts.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": labels[-1],
                "annotations": notes[-1],
                "startsAt": rfc3339(_starts_ns(e)),
                "endsAt": rfc3339(e.at_ns) if resolved else _ZERO_TIME,
                "generatorURL": generator_url,
                "fingerprint": e.fingerprint,
            }
        )
    truncated = 0
    if max_alerts and len(alerts) > max_alerts:
        truncated = len(alerts) - max_alerts
        alerts, labels, notes = alerts[:max_alerts], labels[:max_alerts], notes[:max_alerts]
    group_labels = {"alertname": labels[0]["alertname"]} if labels else {}
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common(labels),
        "commonAnnotations": _common(notes),
        "externalURL": external_url,
        "alerts": alerts,
    }


class _HTTPChannel(Channel):
    """Shared by the two: a URL (secret past its host), custom headers (values secret)."""

    kind = ""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None, timeout: float, name: str):
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        self.timeout = timeout
        self._redactor = Redactor(url, self._headers.values())

    def _post(self, url: str, payload: Any) -> None:
        post_json(
            url,
            payload,
            what=f"{self.name} ({redact_url(self._url)})",
            redactor=self._redactor,
            headers=self._headers,
            timeout=self.timeout,
        )

    def describe(self) -> dict[str, Any]:
        """Type, redacted URL and the header names (not their values)."""
        return {"type": self.kind, "url": redact_url(self._url), "headers": sorted(self._headers)}


class WebhookChannel(_HTTPChannel):
    """POSTs Alertmanager-webhook-format JSON, one request per rule in a batch."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        receiver: str = "metricskit",
        external_url: str = "",
        max_alerts: int = 0,
        timeout: float = 10.0,
        name: str = "webhook",
    ) -> None:
        super().__init__(url, headers=headers, timeout=timeout, name=name)
        self.receiver = receiver
        self.external_url = external_url
        self.max_alerts = max_alerts

    @classmethod
    def from_config(cls, config: WebhookConfig | Mapping[str, Any]) -> WebhookChannel:
        """Build from ``notifications.webhook``: ``{url, headers, receiver, max_alerts, ...}``."""
        c = validate_section(WebhookConfig, config, ("notifications", "webhook"))
        return cls(
            c.url,
            headers=c.headers,
            receiver=c.receiver,
            external_url=c.external_url,
            max_alerts=c.max_alerts,
            timeout=c.timeout_seconds,
        )

    def send(self, events: Sequence[AlertEvent]) -> None:
        """Group the batch by rule (Alertmanager's ``group_by: [alertname]``) and POST each."""
        groups: dict[str, list[AlertEvent]] = {}
        for event in deliverable(events):
            groups.setdefault(event.rule, []).append(event)
        for group in groups.values():
            self._post(
                self._url,
                webhook_payload(
                    group,
                    receiver=self.receiver,
                    external_url=self.external_url,
                    max_alerts=self.max_alerts,
                ),
            )


class AlertmanagerChannel(_HTTPChannel):
    """Pushes alerts to an Alertmanager's ``/api/v2/alerts``, as Prometheus does.

    Firing alerts go without ``endsAt`` (Alertmanager then resolves them itself after its
    ``resolve_timeout`` unless re-sent), or with ``at + resolve_timeout`` when that is set;
    resolved ones carry ``endsAt`` = the resolve time.
    """

    kind = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        generator_url: str | None = None,
        resolve_timeout_seconds: float | None = None,
        timeout: float = 10.0,
        name: str = "alertmanager",
    ) -> None:
        super().__init__(url, headers=headers, timeout=timeout, name=name)
        self.generator_url = generator_url
        self.resolve_timeout_seconds = resolve_timeout_seconds

    @classmethod
    def from_config(cls, config: AlertmanagerConfig | Mapping[str, Any]) -> AlertmanagerChannel:
        """Build from ``notifications.alertmanager``: ``{url, headers, generator_url, ...}``."""
        c = validate_section(AlertmanagerConfig, config, ("notifications", "alertmanager"))
        return cls(
            c.url,
            headers=c.headers,
            generator_url=c.generator_url,
            resolve_timeout_seconds=c.resolve_timeout_seconds,
            timeout=c.timeout_seconds,
        )

    def alerts_payload(self, events: Sequence[AlertEvent]) -> list[dict[str, Any]]:
        """The ``postableAlerts`` list for ``events``."""
        out = []
        for e in deliverable(events):
            alert: dict[str, Any] = {
                "labels": alert_labels(e),
                "annotations": alert_annotations(e),
                "startsAt": rfc3339(_starts_ns(e)),
            }
            if e.state is AlertState.RESOLVED:
                alert["endsAt"] = rfc3339(e.at_ns)
            elif self.resolve_timeout_seconds is not None:
                alert["endsAt"] = rfc3339(e.at_ns + int(self.resolve_timeout_seconds * 1e9))
            if self.generator_url:
                alert["generatorURL"] = self.generator_url
            out.append(alert)
        return out

    def send(self, events: Sequence[AlertEvent]) -> None:
        """One POST of the whole batch."""
        alerts = self.alerts_payload(events)
        if alerts:
            self._post(self._url.rstrip("/") + "/api/v2/alerts", alerts)
