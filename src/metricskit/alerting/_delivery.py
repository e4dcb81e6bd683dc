"""Delivering one channel's events: a bounded queue, a worker thread, retries with backoff.

The :class:`~metricskit.alerting.notify.Notifier` owns one :class:`ChannelWorker` per
channel and decides where events go; the worker decides when they are sent and what
happens when a send fails (:class:`RetryPolicy`), and counts it (:class:`ChannelStats`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from metricskit.alerting.channels import Channel, DeliveryError
from metricskit.alerting.channels.base import escape_control
from metricskit.alerting.events import AlertEvent
from metricskit.errors import NotificationError

__all__ = ["ChannelStats", "ChannelWorker", "RetryPolicy", "describe_error"]

# the notifier's logger: delivery is part of what it does, for whoever reads its log
logger = logging.getLogger("metricskit.alerting.notify")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed delivery is retried.

    Attempt ``n`` (1-based) that fails waits ``min(max_delay, base_delay * 2**(n-1))``,
    jittered to between half and all of it so that many notifiers do not retry in step.
    A receiver's ``Retry-After`` replaces the computed delay, capped at ``max_retry_after``.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        full = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return full / 2 + rng.uniform(0, full / 2)


@dataclass
class ChannelStats:
    """Counters for one channel; ``sent``/``failed``/``dropped`` count events."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "retries": self.retries,
        }


class ChannelWorker:
    """One channel's bounded queue and the thread that drains it.

    The thread starts with :meth:`start` and ends when ``stop`` is set; ``wait(seconds)``
    waits before a retry and returns True when the notifier closed meanwhile.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        retry: RetryPolicy,
        queue_size: int,
        batch_size: int,
        rng: random.Random,
        stop: threading.Event,
        wait: Callable[[float], bool],
    ) -> None:
        self.channel = channel
        self.queue: deque[AlertEvent] = deque()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.stats = ChannelStats()
        self.retry = retry
        self.queue_size = queue_size
        self.batch_size = batch_size
        self._rng = rng
        self._stop = stop
        self._wait = wait
        self.thread = threading.Thread(
            target=self._run, name=f"metricskit-notify-{channel.name}", daemon=True
        )

    def start(self) -> None:
        """Start the thread that delivers what is queued."""
        self.thread.start()

    def put(self, event: AlertEvent) -> None:
        """Queue ``event``; a full queue drops (and counts, and logs) its oldest one."""
        with self.cond:
            if len(self.queue) >= self.queue_size:
                lost = self.queue.popleft()
                self.stats.dropped += 1
                logger.warning(
                    "notification queue of channel %r is full (%d); dropped the oldest event "
                    "(%s %s)",
                    self.channel.name,
                    self.queue_size,
                    lost.rule,
                    lost.state.value,
                )
            self.queue.append(event)
            self.cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued and nothing being sent (call holding ``cond``)."""
        return not self.queue and self.in_flight == 0

    def _run(self) -> None:
        stop = self._stop
        while True:
            with self.cond:
                while not self.queue and not stop.is_set():
                    self.cond.wait()
                if stop.is_set():
                    return
                size = min(len(self.queue), self.batch_size)
                batch = [self.queue.popleft() for _ in range(size)]
                self.in_flight = len(batch)
            try:
                self._deliver(batch)
            finally:
                with self.cond:
                    self.in_flight = 0
                    self.cond.notify_all()

    def _deliver(self, batch: list[AlertEvent]) -> None:
        policy, name = self.retry, self.channel.name
        for attempt in range(1, policy.attempts + 1):
            try:
                self.channel.send(batch)
            except Exception as exc:  # a channel bug must not kill its worker
                error = describe_error(exc)
                retryable = not isinstance(exc, DeliveryError) or exc.retryable
                retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
                if not retryable or attempt == policy.attempts:
                    self._give_up(batch, f"{error} (attempt {attempt} of {policy.attempts})")
                    return
                wait = policy.delay(attempt, self._rng, retry_after)
                logger.info(
                    "channel %r: %s; retry %d of %d in %.3gs%s",
                    name,
                    error,
                    attempt,
                    policy.attempts - 1,
                    wait,
                    " (Retry-After)" if retry_after is not None else "",
                )
                with self.cond:
                    self.stats.retries += 1
                if self._wait(wait):
                    self._give_up(batch, f"{error} (notifier closed before retrying)")
                    return
            else:
                with self.cond:
                    # in one step with the count, so stats() never sees it twice or not at all
                    self.stats.sent += len(batch)
                    self.in_flight = 0
                return

    def _give_up(self, batch: list[AlertEvent], why: str) -> None:
        with self.cond:
            self.stats.failed += len(batch)
            self.in_flight = 0
        rules = sorted({e.rule for e in batch})
        logger.error(
            "channel %r failed to deliver %d event(s) (rules: %s): %s",
            self.channel.name,
            len(batch),
            escape_control(", ".join(rules)),
            why,
        )


def describe_error(exc: BaseException) -> str:
    """A failure's message for logs and ``test_channels``, with no secret in it."""
    # Channels scrub their own NotificationErrors; anything else is a channel bug whose
    # message we do not trust with secrets, so only its type is shown.
    if isinstance(exc, NotificationError):
        return str(exc)
    return f"unexpected {type(exc).__name__} in channel"
