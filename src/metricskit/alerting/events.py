"""The alert event the rules engine produces and the notification channels consume.

An :class:`AlertEvent` is an immutable snapshot of one series' alert state at one
evaluation. The rules engine builds them; :class:`metricskit.alerting.notify.Notifier` routes them
to the channels named in :attr:`AlertEvent.channels`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from metricskit.errors import ConfigError
from metricskit.model import Tags

__all__ = ["EVERY_ALERTMANAGER", "AlertEvent", "AlertState", "Severity", "fingerprint_of"]

EVERY_ALERTMANAGER = "@alertmanagers"
"""A rule's channel that stands for every configured Alertmanager channel (none: nothing).

The rules of a Prometheus ``groups:`` file route to it and to the log: Prometheus sends
every alert to all of its Alertmanagers, and such a file has no place to name channels.
"""


class AlertState(str, Enum):
    """Where a series stands in an alert rule's state machine."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Severity(str, Enum):
    """How bad an alert is; ordered ``INFO < WARNING < CRITICAL``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _SEVERITY_RANK[self.value]

    # str's comparison would order alphabetically ("critical" < "info"); severities
    # must compare by rank, and only with each other.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_str(cls, text: str) -> Severity:
        """Parse ``"critical"``, ``"WARNING"``, ...; raise ``ConfigError`` naming the choices.

        ``ConfigError`` is a ``ValueError``; a config loader can re-raise it with file and line.
        """
        if isinstance(text, Severity):
            return text
        if isinstance(text, str):
            try:
                return cls(text.strip().lower())
            except ValueError:
                pass
        choices = ", ".join(s.value for s in cls)
        raise ConfigError(f"unknown severity {text!r}; expected one of: {choices}")


def fingerprint_of(rule: str, tags: Tags) -> str:
    """A stable 16-hex-digit id of ``(rule, tags)``, the same across processes and runs."""
    text = rule + "\x00" + "\x00".join(f"{k}\x01{v}" for k, v in tags.items_tuple)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _json_float(value: float | None) -> float | str | None:
    # JSON has no NaN or infinity; spell them as strings rather than emit invalid JSON.
    if value is None or math.isfinite(value):
        return value
    return str(value)


@dataclass(frozen=True)
class AlertEvent:
    """One series' alert state at one evaluation: as handed to the notification channels,
    and as :meth:`RuleEngine.active_alerts <metricskit.alerting.engine.RuleEngine.active_alerts>`
    lists pending and firing alerts (:data:`metricskit.alerting.engine.ActiveAlert` is this
    type)."""

    rule: str
    metric: str
    tags: Tags
    state: AlertState
    severity: Severity
    value: float
    threshold: float
    operator: str
    at_ns: int
    active_since_ns: int | None
    fired_at_ns: int | None
    firing_value: float | None
    summary: str
    description: str
    channels: tuple[str, ...]
    fingerprint: str
    is_test: bool = False
    silenced: bool = False
    """Whether a silence mutes this alert; set by
    :meth:`RuleEngine.active_alerts <metricskit.alerting.engine.RuleEngine.active_alerts>`. Channels
    are never handed a muted event, so :meth:`to_dict` (their payload) leaves it out."""
    alertname: str | None = None
    """The ``alert:`` name of a rule from a Prometheus ``groups:`` file, its ``alertname``
    label as Prometheus sends it; ``None`` for the seed's rules (their alertname is
    :attr:`rule`)."""
    annotations: tuple[tuple[str, str], ...] = ()
    """An expression rule's annotations, templated as Prometheus templates them, sorted."""

    @property
    def since_ns(self) -> int | None:
        """When the alert became active (pending); :attr:`active_since_ns` by its name as
        :meth:`RuleEngine.active_alerts <metricskit.alerting.engine.RuleEngine.active_alerts>` has
        always called it."""
        return self.active_since_ns

    @property
    def duration_fired_s(self) -> float | None:
        """Seconds from firing to ``at_ns`` (RESOLVED: how long it fired); None if never fired."""
        if self.fired_at_ns is None:
            return None
        return max(0, self.at_ns - self.fired_at_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: enums and non-finite floats as strings, tags as a plain dict."""
        return {
            "rule": self.rule,
            "metric": self.metric,
            "tags": dict(self.tags.items_tuple),
            "state": self.state.value,
            "severity": self.severity.value,
            "value": _json_float(self.value),
            "threshold": _json_float(self.threshold),
            "operator": self.operator,
            "at_ns": self.at_ns,
            "active_since_ns": self.active_since_ns,
            "fired_at_ns": self.fired_at_ns,
            "firing_value": _json_float(self.firing_value),
            "duration_fired_s": self.duration_fired_s,
            "summary": self.summary,
            "description": self.description,
            "channels": list(self.channels),
            "fingerprint": self.fingerprint,
            "is_test": self.is_test,
            "alertname": self.alertname,
            "annotations": dict(self.annotations),
        }
