"""The ``log`` channel: one line per event appended to ``monitoring_alerts.log``.

Lines read like the seed's, prefixed with the evaluation time and followed by state,
severity, rule and tags so ``grep``/log shippers can pick them apart::

    2024-05-01T12:00:00.000Z ALERT: High Memory Usage - system.memory.usage_percent = 92.5% \
(threshold > 90%) [FIRING critical] rule=system.high_memory host=web1
    2024-05-01T12:05:00.000Z RESOLVED: High Memory Usage - system.memory.usage_percent = 71% \
(was 92.5% when it fired; fired for 5m) [RESOLVED critical] rule=system.high_memory host=web1
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metricskit._files import open_append
from metricskit._validation import validate_section
from metricskit.alerting.channels.base import (
    Channel,
    DeliveryError,
    escape_control,
    event_headline,
    rfc3339,
    tags_text,
)
from metricskit.alerting.channels.config import DEFAULT_LOG_PATH, LogConfig
from metricskit.alerting.events import AlertEvent, AlertState

__all__ = ["DEFAULT_LOG_PATH", "LogChannel", "format_log_line"]

_PREFIX = {
    AlertState.FIRING: "ALERT",
    AlertState.RESOLVED: "RESOLVED",
    AlertState.PENDING: "PENDING",
    AlertState.INACTIVE: "INACTIVE",
}


def format_log_line(event: AlertEvent) -> str:
    """The line (without newline) the log channel writes for ``event``."""
    prefix = _PREFIX[event.state]
    if event.is_test:
        prefix = f"TEST {prefix}"
    fields = f"rule={escape_control(event.rule)}"
    tags = tags_text(event)
    if tags:
        fields += f" {tags}"
    state = f"[{event.state.value.upper()} {event.severity.value}]"
    return f"{rfc3339(event.at_ns)} {prefix}: {event_headline(event)} {state} {fields}"


class LogChannel(Channel):
    """Appends one line per event to a file (every state, pending included)."""

    receives_pending = True

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_LOG_PATH, *, name: str = "log"):
        self.name = name
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: LogConfig | Mapping[str, Any] | None,
        *,
        base_dir: str | os.PathLike[str] | None,
    ) -> LogChannel:
        """Build from ``notifications.log``; a relative ``path`` goes under ``base_dir``."""
        path = Path(validate_section(LogConfig, config, ("notifications", "log")).path)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return cls(path)

    def send(self, events: Sequence[AlertEvent]) -> None:
        """Append the events' lines in one write, so concurrent writers do not interleave."""
        if not events:
            return
        text = "".join(format_log_line(e) + "\n" for e in events)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open_append(self.path) as out:
                    out.write(text)
        except OSError as exc:
            raise DeliveryError(f"log: cannot append to {self.path}: {exc.strerror}") from None

    def describe(self) -> dict[str, Any]:
        """``{"type": "log", "path": ...}``."""
        return {"type": "log", "path": str(self.path)}
