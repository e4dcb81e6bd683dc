"""Delivering alert events to notification channels, off the caller's thread.

The rules engine calls :meth:`Notifier.notify` with the events of an evaluation; the
notifier routes each event to the channels named in its ``channels`` tuple and returns at
once. Each channel has a bounded queue and one worker thread that sends batches, retries
failures with exponential backoff and jitter (honouring a 429's ``Retry-After``), and
finally logs the failure on the ``metricskit.alerting.notify`` logger and counts it. A full queue
drops its oldest event (counted) rather than block or grow without bound: a notifier
must never slow down or break the loop that evaluates rules.

    notifier = Notifier.from_config(config.notifications, log_dir="logs")
    notifier.notify(events)          # never blocks, never raises
    notifier.test_channels()         # {"log": "ok", "slack": "error: slack (...): HTTP 404"}
    notifier.close()
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from metricskit._time import Clock, SystemClock
from metricskit._validation import validate_section
from metricskit.alerting._delivery import ChannelStats, ChannelWorker, RetryPolicy, describe_error
from metricskit.alerting.channels import (
    AlertmanagerChannel,
    Channel,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from metricskit.alerting.channels.base import escape_control
from metricskit.alerting.channels.config import NotificationsConfig
from metricskit.alerting.events import (
    EVERY_ALERTMANAGER,
    AlertEvent,
    AlertState,
    Severity,
    fingerprint_of,
)
from metricskit.errors import InvalidArgumentError
from metricskit.model import EMPTY_TAGS

if TYPE_CHECKING:
    from metricskit._yaml import YamlDocument
    from metricskit.alerting.rules_model import AlertRule

__all__ = ["ChannelStats", "Notifier", "RetryPolicy", "make_test_event", "routing_warnings"]

logger = logging.getLogger("metricskit.alerting.notify")

_CLOCK_RECHECK_S = 0.1
_BUILDERS: dict[str, Callable[[Any], Channel]] = {
    "slack": SlackChannel.from_config,
    "email": EmailChannel.from_config,
    "webhook": WebhookChannel.from_config,
    "alertmanager": AlertmanagerChannel.from_config,
}


class Notifier:
    """Routes alert events to named channels and delivers them in the background.

    ``notify`` never blocks and never raises; ``flush`` waits for the queues to drain;
    ``close`` flushes (up to a timeout) and stops the workers. Also a context manager.

    An event routed to a channel that does not exist goes to the ``fallback`` channel
    (``log``) instead, so no alert is lost without a word; ``unavailable`` names channels
    the config has but could not build (``{"slack": "why"}``), for the warnings and
    :meth:`test_channels`.
    Retry delays are measured on ``clock`` (tests pass a ManualClock instead of waiting).
    """

    def __init__(
        self,
        channels: Iterable[Channel],
        *,
        retry: RetryPolicy | None = None,
        queue_size: int = 1000,
        batch_size: int = 100,
        rng: random.Random | None = None,
        fallback: str | None = "log",
        unavailable: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise InvalidArgumentError("queue_size and batch_size must be at least 1")
        self.retry = retry or RetryPolicy()
        if self.retry.attempts < 1:
            raise InvalidArgumentError("RetryPolicy.attempts must be at least 1")
        self.queue_size = queue_size
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self.clock: Clock = clock or SystemClock()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._unknown: dict[str, int] = {}
        self.unavailable: dict[str, str] = dict(unavailable or {})
        """Channels the config names but that could not be built, with the reason."""
        self._workers: dict[str, ChannelWorker] = {}
        for channel in channels:
            if channel.name in self._workers:
                raise InvalidArgumentError(f"two channels are named {channel.name!r}")
            self._workers[channel.name] = ChannelWorker(
                channel,
                retry=self.retry,
                queue_size=queue_size,
                batch_size=batch_size,
                rng=self._rng,
                stop=self._stop,
                wait=self._wait,
            )
        self.fallback = fallback if fallback in self._workers else None
        """Where events routed to a channel that does not exist go (``None``: dropped)."""
        self._alertmanagers = tuple(
            name for name, w in self._workers.items() if isinstance(w.channel, AlertmanagerChannel)
        )
        for worker in self._workers.values():
            worker.start()

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` by the clock before a retry; True if closed meanwhile."""
        last = self.clock.now()
        due = last + seconds
        while (left := due - (now := self.clock.now())) > 0:
            if now < last:  # a clock set backwards must not lengthen the wait
                due -= last - now
            last = now
            # re-read the clock often: it may jump, or be a test's ManualClock
            if self._stop.wait(min(left, _CLOCK_RECHECK_S)):
                return True
        return False

    @property
    def channels(self) -> dict[str, Channel]:
        """The configured channels by name."""
        return {name: w.channel for name, w in self._workers.items()}

    def notify(self, events: Iterable[AlertEvent]) -> None:
        """Queue each event for the channels it names; return at once, never raise.

        Pending and inactive events go only to channels that keep every state (the log).
        """
        try:
            for event in events:
                targets: dict[str, None] = {}  # ordered, and the fallback only once
                for name in event.channels:
                    if name == EVERY_ALERTMANAGER:
                        targets.update(dict.fromkeys(self._alertmanagers))
                    elif name in self._workers:
                        targets[name] = None
                    else:
                        self._unknown_channel(name, event)
                        if self.fallback is not None:
                            targets[self.fallback] = None
                wanted = event.state in (AlertState.FIRING, AlertState.RESOLVED)
                for name in targets:
                    worker = self._workers[name]
                    if not (wanted or worker.channel.receives_pending):
                        continue
                    if not self._stop.is_set():
                        worker.put(event)
                    else:
                        with worker.cond:
                            worker.stats.dropped += 1
        except Exception:  # the alerting loop must survive a notifier bug
            logger.exception("notify() failed; events may have been lost")

    def _unknown_channel(self, name: str, event: AlertEvent) -> None:
        with self._lock:
            count = self._unknown.get(name, 0)
            self._unknown[name] = count + 1
        if count == 0:
            logger.warning(
                "rule %r routes to channel %r, %s; %s (counted in Notifier.unknown_channels)",
                event.rule,
                name,
                self._why_missing(name),
                self._instead(),
            )

    def _why_missing(self, name: str) -> str:
        return _why_missing(name, self._workers, self.unavailable)

    def _instead(self) -> str:
        return _instead(self.fallback)

    def routing_warnings(
        self, rules: Iterable[AlertRule], doc: YamlDocument | None = None
    ) -> list[str]:
        """:func:`routing_warnings` for this notifier's channels."""
        return routing_warnings(rules, self._workers, self.unavailable, self.fallback, doc)

    @property
    def unknown_channels(self) -> dict[str, int]:
        """Events routed to channel names that are not configured, by name."""
        with self._lock:
            return dict(self._unknown)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queue is empty and nothing is being sent; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers.values():
            with worker.cond:
                while not worker.idle():
                    if not worker.thread.is_alive():
                        break
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    worker.cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the workers.

        Events still queued after that are counted as dropped and logged.
        """
        if self._stop.is_set():
            return
        self.flush(timeout)
        self._stop.set()
        for worker in self._workers.values():
            with worker.cond:
                left = len(worker.queue)
                worker.queue.clear()
                worker.stats.dropped += left
                worker.cond.notify_all()
            if left:
                logger.error(
                    "channel %r: closed with %d undelivered event(s)", worker.channel.name, left
                )
        for worker in self._workers.values():
            worker.thread.join(timeout)
            worker.channel.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: events ``sent``, ``failed``, ``dropped``, ``queued``, ``in_flight``
        (taken from the queue and being sent or retried), and ``retries``.

        Every event handed to a channel is in exactly one of the five event counts.
        """
        out = {}
        for name, worker in self._workers.items():
            with worker.cond:
                out[name] = {
                    **worker.stats.to_dict(),
                    "queued": len(worker.queue),
                    "in_flight": worker.in_flight,
                }
        return out

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each channel's description (secrets redacted), for status output."""
        return {name: w.channel.describe() for name, w in self._workers.items()}

    def test_channels(self, now_ns: int | None = None) -> dict[str, str]:
        """Send a test event through every channel now, once each (no retries).

        Returns ``{channel: "ok" | "error: <reason>"}``; reasons carry no secrets.
        """
        results = {name: f"error: {reason}" for name, reason in self.unavailable.items()}
        for name, worker in self._workers.items():
            event = make_test_event(name, now_ns)
            try:
                worker.channel.send([event])
            except Exception as exc:
                results[name] = f"error: {describe_error(exc)}"
            else:
                results[name] = "ok"
        return results

    @classmethod
    def from_config(
        cls,
        notifications: NotificationsConfig | Mapping[str, Any] | None,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Notifier:
        """Build from the config's ``notifications`` section (already env-substituted).

        Takes the :class:`~metricskit.alerting.channels.config.NotificationsConfig` of a
        loaded config, or a plain mapping (validated into one; ``None`` is the defaults):
        ``log``, ``slack``, ``email``, ``webhook``, ``alertmanager`` (each may say
        ``enabled: false``) and ``delivery``. ``log`` always exists; its relative path is
        taken under ``log_dir``. Keyword ``options`` are passed to the constructor (e.g.
        ``rng``, ``unavailable``). A bad value raises :class:`~metricskit.errors.ConfigError`.
        """
        config = validate_section(NotificationsConfig, notifications, ("notifications",))
        channels: list[Channel] = [LogChannel.from_config(config.log, base_dir=log_dir)]
        channels += [_BUILDERS[name](c) for name, c in config.enabled_channels().items()]
        d = config.delivery
        retry = RetryPolicy(
            attempts=d.attempts,
            base_delay=d.base_delay_seconds,
            max_delay=d.max_delay_seconds,
            max_retry_after=d.max_retry_after_seconds,
        )
        return cls(
            channels, retry=retry, queue_size=d.queue_size, batch_size=d.batch_size, **options
        )


def _why_missing(name: str, configured: Collection[str], unavailable: Mapping[str, str]) -> str:
    reason = unavailable.get(name)
    if reason is not None:
        return f"which is off: {reason}"
    return f"which is not configured (configured: {', '.join(sorted(configured)) or 'none'})"


def _instead(fallback: str | None) -> str:
    if fallback is None:
        return "its events are dropped"
    return f"its events go to the {fallback!r} channel instead"


def routing_warnings(
    rules: Iterable[AlertRule],
    channels: Collection[str],
    unavailable: Mapping[str, str] | None = None,
    fallback: str | None = "log",
    doc: YamlDocument | None = None,
) -> list[str]:
    """One line per channel that is off, or that enabled rules route to but is missing.

    ``channels`` are the names a notifier has, ``unavailable`` those the config names
    but left off (with why), ``fallback`` where events for a missing channel go. A line
    about rules starts with the first rule's ``channels`` key as ``file:line`` when
    ``doc`` (the file the rules come from) is given, and says where their events go
    instead.
    """
    unavailable = unavailable or {}
    fallback = fallback if fallback in channels else None
    routed: dict[str, list[AlertRule]] = {}
    for rule in rules:
        for name in rule.channels if rule.enabled else ():
            if name not in channels and name != EVERY_ALERTMANAGER:
                routed.setdefault(name, []).append(rule)
    out = [
        escape_control(f"{reason}; channel {name!r} is off")
        for name, reason in sorted(unavailable.items())
        if name not in routed
    ]
    for name, users in sorted(routed.items()):
        first, more = users[0], len(users) - 1
        message = (
            f"rule {first.name}{f' (and {more} more)' if more else ''} routes to channel "
            f"{name!r}, {_why_missing(name, channels, unavailable)}; {_instead(fallback)}"
        )
        if doc is not None:
            key = first.name[len(first.group) + 1 :] if first.group else first.name
            message = str(doc.error(message, ("alerts", first.group, key, "channels")))
        out.append(escape_control(message))
    return out


def make_test_event(channel: str, now_ns: int | None = None) -> AlertEvent:
    """The firing ``is_test`` event ``test_channels`` sends to ``channel``."""
    at = time.time_ns() if now_ns is None else now_ns
    rule = "metricskit.test_alert"
    return AlertEvent(
        rule=rule,
        metric="metricskit.test.value",
        tags=EMPTY_TAGS,
        state=AlertState.FIRING,
        severity=Severity.INFO,
        value=1.0,
        threshold=0.0,
        operator="gt",
        at_ns=at,
        active_since_ns=at,
        fired_at_ns=at,
        firing_value=1.0,
        summary="Test alert from metricskit",
        description="Sent by 'alerts test' to check this channel; no action needed.",
        channels=(channel,),
        fingerprint=fingerprint_of(rule, EMPTY_TAGS),
        is_test=True,
    )
