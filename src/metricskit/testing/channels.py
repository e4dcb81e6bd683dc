"""A notification channel that keeps what it is sent, for tests and examples.

It is a real :class:`~metricskit.alerting.channels.base.Channel`: plug it into a
:class:`~metricskit.alerting.notify.Notifier` like Slack or email, and read back exactly the
events the notifier delivered::

    capture = CapturingChannel("slack")
    notifier = Notifier([capture])
    engine = RuleEngine(rules, store, notifier=notifier, clock=clock)
    engine.evaluate()
    notifier.flush()
    assert [e.state for e in capture.events] == [AlertState.FIRING]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from metricskit.alerting.channels.base import Channel, DeliveryError
from metricskit.alerting.events import AlertEvent, AlertState

__all__ = ["CapturingChannel"]


class CapturingChannel(Channel):
    """Records every event delivered to it, in delivery order; thread-safe.

    ``fail_next(n)`` makes the next ``n`` deliveries raise a retryable
    :class:`~metricskit.alerting.channels.base.DeliveryError`, to exercise retries.
    """

    def __init__(self, name: str = "capture") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._events: list[AlertEvent] = []
        self._batches = 0
        self._failures_left = 0

    def send(self, events: Sequence[AlertEvent]) -> None:
        """Keep ``events`` (or fail, if :meth:`fail_next` asked for it)."""
        with self._lock:
            if self._failures_left:
                self._failures_left -= 1
                raise DeliveryError(f"{self.name}: failure requested by fail_next()")
            self._events.extend(events)
            self._batches += 1

    def describe(self) -> dict[str, Any]:
        """Name, type and how much was captured."""
        with self._lock:
            return {
                "type": "capture",
                "name": self.name,
                "events": len(self._events),
                "batches": self._batches,
            }

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` calls to :meth:`send` fail."""
        with self._lock:
            self._failures_left = count

    @property
    def events(self) -> list[AlertEvent]:
        """A copy of the events received so far."""
        with self._lock:
            return list(self._events)

    def states(self) -> list[AlertState]:
        """The state of each received event, in order."""
        return [e.state for e in self.events]

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._events.clear()
            self._batches = 0
