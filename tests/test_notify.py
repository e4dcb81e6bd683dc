"""Notifier: routing, background delivery, retries, drops, test_channels, from_config.

Receivers are real HTTP servers on 127.0.0.1 (see ``test_channels_http.Receiver``); that
``notify()`` does not wait for delivery is shown by ordering (the receiver holds the
request while the test checks that ``notify`` already returned), not by timing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from metricskit.alerting.channels import (
    AlertmanagerChannel,
    Channel,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from metricskit.alerting.channels.base import parse_retry_after
from metricskit.alerting.events import AlertEvent
from metricskit.alerting.notify import Notifier, RetryPolicy
from metricskit.errors import ConfigError
from metricskit.testing import ManualClock
from tests.services import free_port
from tests.test_channels_http import SECRET_PATH, Receiver, Reply, make_event, receiver

__all__ = ["receiver"]  # the fixture, imported for pytest

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)


@pytest.fixture
def caplog_notify(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="metricskit.alerting.notify")
    return caplog


@pytest.fixture
def make_notifier() -> Iterator[Any]:
    made: list[Notifier] = []

    def make(*channels: Channel, **kwargs: Any) -> Notifier:
        kwargs.setdefault("retry", FAST)
        notifier = Notifier(channels, **kwargs)
        made.append(notifier)
        return notifier

    yield make
    for n in made:
        n.close(timeout=5)


def test_routes_each_event_to_the_channels_it_names(
    receiver: Receiver, tmp_path: Path, make_notifier: Any
) -> None:
    log = tmp_path / "alerts.log"
    notifier = make_notifier(LogChannel(log), SlackChannel(receiver.url()))
    notifier.notify([make_event("a.both", channels=("slack", "log"))])
    notifier.notify([make_event("a.logonly", channels=("log",)), make_event("a.none", channels=())])
    assert notifier.flush(30)
    assert len(receiver.requests) == 1
    assert "a.both" in receiver.requests[0].body["blocks"][0]["text"]["text"]
    lines = log.read_text().splitlines()
    assert [line.split("rule=")[1].split()[0] for line in lines] == ["a.both", "a.logonly"]
    stats = notifier.stats()
    assert stats["log"] == {
        "sent": 2, "failed": 0, "dropped": 0, "retries": 0, "queued": 0, "in_flight": 0
    }  # fmt: skip
    assert stats["slack"]["sent"] == 1


def test_unknown_channel_is_logged_once_and_counted(
    tmp_path: Path, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(LogChannel(tmp_path / "a.log"))
    for _ in range(3):
        notifier.notify([make_event(channels=("pagerduty", "log"))])
    assert notifier.flush(30)
    assert notifier.unknown_channels == {"pagerduty": 3}
    warnings = [r for r in caplog_notify.records if "pagerduty" in r.getMessage()]
    assert len(warnings) == 1
    assert "not configured" in warnings[0].getMessage()
    assert notifier.stats()["log"]["sent"] == 3


def test_an_event_for_a_missing_channel_goes_to_the_log_instead(
    tmp_path: Path, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "a.log"
    notifier = make_notifier(LogChannel(log), unavailable={"slack": "SLACK_URL is not set"})
    notifier.notify([make_event("a.slack_only", channels=("slack",))])
    notifier.notify([make_event("a.pager", channels=("pagerduty", "log"))])
    assert notifier.flush(30)
    rules = [line.split("rule=")[1].split()[0] for line in log.read_text().splitlines()]
    assert rules == ["a.slack_only", "a.pager"]  # once each, fallback or not
    assert notifier.unknown_channels == {"slack": 1, "pagerduty": 1}
    assert "which is off: SLACK_URL is not set; its events go to the 'log'" in caplog_notify.text
    assert notifier.test_channels()["slack"] == "error: SLACK_URL is not set"


def test_without_a_fallback_channel_the_loss_is_logged(
    receiver: Receiver, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(SlackChannel(receiver.url()))
    notifier.notify([make_event(channels=("email",))])
    assert notifier.flush(30)
    assert receiver.requests == [] and notifier.unknown_channels == {"email": 1}
    assert "its events are dropped" in caplog_notify.text


def test_500_is_retried_until_it_succeeds(receiver: Receiver, make_notifier: Any) -> None:
    receiver.script.extend([Reply(500), Reply(503)])
    notifier = make_notifier(SlackChannel(receiver.url()))
    notifier.notify([make_event(channels=("slack",))])
    assert notifier.flush(30)
    assert len(receiver.requests) == 3
    assert receiver.requests[0].body == receiver.requests[2].body
    assert notifier.stats()["slack"] == {
        "sent": 1, "failed": 0, "dropped": 0, "retries": 2, "queued": 0, "in_flight": 0
    }  # fmt: skip


def test_a_batch_being_retried_is_counted_in_flight(receiver: Receiver, make_notifier: Any) -> None:
    # first attempt 500, the retry is held by the receiver: the event is neither queued,
    # sent, failed nor dropped, but it must still be counted somewhere
    receiver.script.extend([Reply(500), Reply(mode="hold")])
    notifier = make_notifier(SlackChannel(receiver.url()))
    notifier.notify([make_event(channels=("slack",)), make_event("b.other", channels=("slack",))])
    receiver.wait_for(2)
    during = notifier.stats()["slack"]
    assert during == {
        "sent": 0, "failed": 0, "dropped": 0, "retries": 1, "queued": 0, "in_flight": 2
    }  # fmt: skip
    receiver.gate.set()
    assert notifier.flush(30)
    after = notifier.stats()["slack"]
    assert after == {**during, "sent": 2, "in_flight": 0}


def test_persistent_500_ends_in_a_logged_failure(
    receiver: Receiver, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    receiver.script.extend([Reply(500)] * 3)
    notifier = make_notifier(SlackChannel(receiver.url()))
    notifier.notify([make_event(channels=("slack",))])
    assert notifier.flush(30)
    assert len(receiver.requests) == 3
    assert notifier.stats()["slack"]["failed"] == 1
    assert notifier.stats()["slack"]["retries"] == 2
    errors = [r for r in caplog_notify.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "HTTP 500" in message and "attempt 3 of 3" in message
    assert "system.high_memory" in message
    assert "SECRETTOKEN" not in caplog_notify.text


def test_client_errors_are_not_retried(receiver: Receiver, make_notifier: Any) -> None:
    receiver.script.append(Reply(400))
    notifier = make_notifier(WebhookChannel(receiver.url("/hook")))
    notifier.notify([make_event(channels=("webhook",))])
    assert notifier.flush(30)
    assert len(receiver.requests) == 1
    assert notifier.stats()["webhook"]["failed"] == 1
    assert notifier.stats()["webhook"]["retries"] == 0


def test_429_retry_after_is_honoured(
    receiver: Receiver, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    receiver.script.append(Reply(429, {"Retry-After": "1"}))
    clock = ManualClock()
    notifier = make_notifier(SlackChannel(receiver.url()), clock=clock)
    notifier.notify([make_event(channels=("slack",))])
    receiver.wait_for(1)
    # the worker waits the full Retry-After on its clock, not FAST's 1 ms: still waiting
    assert not notifier.flush(0.3)
    assert len(receiver.requests) == 1
    clock.advance("1s")
    assert notifier.flush(30)
    assert len(receiver.requests) == 2
    assert "in 1s (Retry-After)" in caplog_notify.text
    assert notifier.stats()["slack"]["sent"] == 1


def test_a_clock_set_backwards_does_not_lengthen_a_retry_wait() -> None:
    class SetBack:
        """Reads 1000 s, then an hour earlier, then 10.5 s after that."""

        def __init__(self) -> None:
            self.reads = [1000.0, 1000.0 - 3600, 1000.0 - 3600 + 10.5]

        def now(self) -> float:
            assert self.reads, "the wait outlasted its 10 s on the clock"
            return self.reads.pop(0)

        def now_ns(self) -> int:
            return round(self.now() * 1e9)

    notifier = Notifier([], clock=SetBack())
    assert notifier._wait(10) is False  # waited out, not closed
    notifier.close()


def test_slow_receiver_times_out_and_fails(
    receiver: Receiver, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    receiver.script.extend([Reply(mode="slow")] * 2)
    notifier = make_notifier(
        SlackChannel(receiver.url(), timeout=0.2), retry=RetryPolicy(2, 0.001, 0.001)
    )
    notifier.notify([make_event(channels=("slack",))])
    assert notifier.flush(30)
    assert len(receiver.requests) == 2
    assert notifier.stats()["slack"]["failed"] == 1
    assert "no answer within 0.2s" in caplog_notify.text


def test_closed_port_is_a_logged_failure_without_secrets(
    make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    notifier = make_notifier(SlackChannel(url), AlertmanagerChannel(url))
    notifier.notify([make_event(channels=("slack", "alertmanager"))])
    assert notifier.flush(30)
    for name in ("slack", "alertmanager"):
        assert notifier.stats()[name]["failed"] == 1
        assert notifier.stats()[name]["retries"] == 2
    assert "ConnectionError" in caplog_notify.text
    assert "SECRETTOKEN" not in caplog_notify.text
    assert "services/T000" not in caplog_notify.text


def test_notify_returns_before_the_receiver_answers(receiver: Receiver, make_notifier: Any) -> None:
    receiver.script.append(Reply(mode="hold"))
    notifier = make_notifier(SlackChannel(receiver.url()))
    notifier.notify([make_event(channels=("slack",))])
    # notify() has returned, yet the receiver holds the request unanswered:
    receiver.wait_for(1)
    assert notifier.stats()["slack"]["sent"] == 0
    assert not notifier.flush(0.05)
    receiver.gate.set()
    assert notifier.flush(30)
    assert notifier.stats()["slack"]["sent"] == 1


def test_full_queue_drops_the_oldest(
    receiver: Receiver, make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    receiver.script.append(Reply(mode="hold"))
    notifier = make_notifier(SlackChannel(receiver.url()), queue_size=2)
    notifier.notify([make_event("r.first", channels=("slack",))])
    receiver.wait_for(1)  # r.first is in flight, the queue is empty
    notifier.notify([make_event(f"r.n{i}", channels=("slack",)) for i in range(2, 6)])
    assert notifier.stats()["slack"]["dropped"] == 2
    assert notifier.stats()["slack"]["queued"] == 2
    receiver.gate.set()
    assert notifier.flush(30)
    first, second = (str(r.body) for r in receiver.wait_for(2))
    assert len(receiver.requests) == 2
    assert "r.first" in first
    assert "r.n4" in second and "r.n5" in second
    assert "r.n2" not in second and "r.n3" not in second
    assert "dropped the oldest event" in caplog_notify.text


class Exploding(Channel):
    """A channel with a bug: send raises something that is not a NotificationError."""

    name = "buggy"

    def send(self, events: Sequence[AlertEvent]) -> None:
        raise RuntimeError("secret detail from a bug")

    def describe(self) -> dict[str, Any]:
        return {"type": "buggy"}


def test_notify_never_raises_and_channel_bugs_are_contained(
    make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(Exploding())
    notifier.notify(None)  # type: ignore[arg-type]
    notifier.notify([make_event(channels=("buggy",))])
    assert notifier.flush(30)
    assert notifier.stats()["buggy"]["failed"] == 1
    assert "unexpected RuntimeError in channel" in caplog_notify.text
    assert "secret detail" not in caplog_notify.text
    assert notifier.test_channels() == {"buggy": "error: unexpected RuntimeError in channel"}


def test_a_failure_log_line_escapes_the_rule_names(
    make_notifier: Any, caplog_notify: pytest.LogCaptureFixture
) -> None:
    import dataclasses

    notifier = make_notifier(Exploding())
    event = dataclasses.replace(make_event(channels=("buggy",)), rule="a.b\nERROR forged")
    notifier.notify([event])
    assert notifier.flush(30)
    messages = [r.getMessage() for r in caplog_notify.records]
    (failure,) = [m for m in messages if "failed to deliver" in m]
    assert "\n" not in failure and "a.b\\nERROR forged" in failure


def test_close_abandons_a_retry_wait_and_counts_the_failure(
    receiver: Receiver, caplog_notify: pytest.LogCaptureFixture
) -> None:
    receiver.script.extend([Reply(500)] * 5)
    notifier = Notifier([SlackChannel(receiver.url())], retry=RetryPolicy(5, 3600, 3600))
    notifier.notify([make_event(channels=("slack",))])
    receiver.wait_for(1)
    notifier.close(timeout=0.1)
    assert notifier.stats()["slack"]["failed"] == 1
    assert "notifier closed before retrying" in caplog_notify.text
    notifier.notify([make_event(channels=("slack",))])  # after close: counted, not queued
    assert notifier.stats()["slack"]["dropped"] == 1


def test_test_channels_reports_each_channel(receiver: Receiver, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    log = tmp_path / "alerts.log"
    with Notifier(
        [LogChannel(log), SlackChannel(receiver.url()), WebhookChannel(down, name="webhook")]
    ) as notifier:
        result = notifier.test_channels()
    assert result["log"] == "ok"
    assert result["slack"] == "ok"
    assert result["webhook"].startswith("error: webhook (http://127.0.0.1:")
    assert "ConnectionError" in result["webhook"]
    assert "SECRETTOKEN" not in result["webhook"]
    assert "TEST ALERT: Test alert from metricskit" in log.read_text()
    assert "[TEST]" in receiver.requests[0].body["text"]


def test_retry_delays_grow_with_jitter_and_respect_caps() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0, max_retry_after=60)
    rng = random.Random(7)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1
    assert policy.delay(1, rng, retry_after=5) == 5
    assert policy.delay(1, rng, retry_after=600) == 60


def test_parse_retry_after() -> None:
    import datetime as dt

    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- from_config ----------------------------------------------------------------------------


def test_from_config_builds_the_seed_channels(tmp_path: Path) -> None:
    config = {
        "slack": {
            "webhook_url": "https://hooks.slack.com/services/T1/B1/SECRETTOKEN",
            "channels": {"default": "#alerts", "critical": "#critical-alerts"},
        },
        "email": {
            "recipients": {"critical": ["admin@example.com"], "warning": ["dev@example.com"]},
            "smtp_host": "127.0.0.1",
            "smtp_port": 2525,
            "username": "bot",
            "password": "SECRETPASSWORD",
            "starttls": True,
        },
        "webhook": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Token": "SECRETHDR"}},
        "alertmanager": {"url": "http://127.0.0.1:9093", "enabled": False},
        "delivery": {"attempts": 2, "base_delay_seconds": 0.1, "queue_size": 10},
    }
    with Notifier.from_config(config, log_dir=tmp_path) as notifier:
        channels = notifier.channels
        assert sorted(channels) == ["email", "log", "slack", "webhook"]
        assert isinstance(channels["log"], LogChannel)
        assert channels["log"].path == tmp_path / "monitoring_alerts.log"
        assert isinstance(channels["email"], EmailChannel)
        assert channels["email"].smtp_port == 2525 and channels["email"].starttls
        assert notifier.retry.attempts == 2 and notifier.queue_size == 10
        shown = repr(notifier.describe()) + "".join(repr(c) for c in channels.values())
        for secret in ("SECRETTOKEN", "SECRETPASSWORD", "SECRETHDR", "/services/"):
            assert secret not in shown
        assert notifier.describe()["slack"]["webhook_url"] == "https://hooks.slack.com/<redacted>"


def test_from_config_without_a_section_has_just_the_log(tmp_path: Path) -> None:
    with Notifier.from_config(None, log_dir=tmp_path) as notifier:
        assert list(notifier.channels) == ["log"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pagerduty": {}}, "unknown key 'pagerduty' in notifications; known: log, slack"),
        ({"slack": {}}, "notifications.slack.webhook_url: required key missing"),
        ({"slack": {"webhook_url": "${SLACK_WEBHOOK_URL}"}}, "environment variable"),
        (
            {"slack": {"webhook_url": "https://h/x", "chanels": {}}},
            "unknown key 'chanels' in notifications.slack (did you mean 'channels'?)",
        ),
        ({"slack": {"webhook_url": "https://h/x", "channels": {"urgent": "#x"}}}, "urgent"),
        ({"slack": "https://h/x"}, "expected a mapping, not str"),
        ({"email": {"recipients": {}}}, "recipients: is required"),
        ({"email": {"recipients": {"critical": ["nobody"]}}}, "list of email addresses"),
        (
            {"email": {"recipients": {"critical": ["a@b"]}, "ssl": True, "starttls": True}},
            "not both",
        ),
        ({"email": {"recipients": {"info": ["a@b"]}, "smtp_port": 70000}}, "port number"),
        ({"email": {"recipients": {"info": ["a@b"]}, "password": "SECRETPW"}}, "go together"),
        ({"webhook": {"url": "ftp://x/SECRETPATH"}}, "http:// or https://"),
        (
            {"webhook": {"url": "http://x", "headers": {"A": 1}}},
            "headers.A: Input should be a valid",
        ),
        ({"webhook": {"url": "http://x", "headers": {"A": ["SECRETHDR"]}}}, "headers.A"),
        (
            {"email": {"recipients": {"info": ["a@b"]}, "username": "u", "password": ["SECRETPW"]}},
            "password",
        ),
        (
            {"delivery": {"attempts": 0}},
            "delivery.attempts: Input should be greater than or equal to 1",
        ),
        ({"delivery": {"base_delay_seconds": -1}}, "base_delay_seconds"),
        ({"log": {"path": ""}}, "log.path: must be a non-empty string"),
    ],
)
def test_from_config_rejects_bad_values(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Notifier.from_config(config)
    assert message in str(info.value)
    assert "SECRET" not in str(info.value)


# -- the shared event type ------------------------------------------------------------------


def test_alert_event_helpers_are_json_safe() -> None:
    import json

    from metricskit.alerting.events import AlertState, Severity

    resolved = make_event(state=AlertState.RESOLVED, value=float("nan"))
    assert resolved.duration_fired_s == 300.0
    data = json.loads(json.dumps(resolved.to_dict(), allow_nan=False))
    assert data["state"] == "resolved" and data["severity"] == "critical"
    assert data["tags"] == {"host": "web1"}
    assert data["value"] == "nan"
    assert data["firing_value"] == 92.5
    assert data["channels"] == ["slack", "log"]
    assert make_event(state=AlertState.PENDING).duration_fired_s is None
    assert sorted([Severity.CRITICAL, Severity.INFO, Severity.WARNING]) == [
        Severity.INFO, Severity.WARNING, Severity.CRITICAL
    ]  # fmt: skip
    assert Severity.from_str(" Warning ") is Severity.WARNING
    with pytest.raises(ConfigError, match="expected one of: info, warning, critical"):
        Severity.from_str("urgent")


def test_an_alert_that_fired_and_resolved_before_sending_goes_out_once_per_channel(
    receiver: Receiver, make_notifier: Any
) -> None:
    """A slow receiver holds the first request; meanwhile a rule fires and resolves, so
    each channel's next batch holds both events of one alert. Like Alertmanager, each
    notification carries an alert once, in its latest state."""
    import numpy as np

    from metricskit import Series, SeriesKey, open_store
    from metricskit.alerting.engine import RuleEngine
    from metricskit.alerting.rules_model import AlertRule
    from metricskit.testing import ManualClock

    receiver.script.extend([Reply(mode="hold")] * 3)
    notifier = make_notifier(
        SlackChannel(receiver.url("/slack")),
        WebhookChannel(receiver.url("/hook")),
        AlertmanagerChannel(receiver.url("/am")),
    )
    store, clock = open_store("memory://"), ManualClock(1_700_000_000)
    fields = {"threshold": 80, "operator": "gt", "channels": ["slack", "webhook", "alertmanager"]}
    rules = [AlertRule.create(f"app.{m}", metric=f"app.{m}", **fields) for m in ("first", "flap")]
    engine = RuleEngine(rules, store, notifier=notifier, clock=clock)

    def write(metric: str, value: float) -> None:
        at = np.array([clock.now_ns()])
        store.write([Series(SeriesKey.of(metric, {"host": "web1"}), at, np.array([value]))])

    write("app.first", 90)
    engine.evaluate()  # app.first fires; every channel's receiver holds its request
    receiver.wait_for(3)
    for value in (90.0, 10.0):  # app.flap fires, then resolves, while the sends wait
        clock.advance(60)
        write("app.flap", value)
        engine.evaluate()
    receiver.gate.set()
    assert notifier.flush(30)
    later = {r.path: r.body for r in receiver.wait_for(6)[3:]}
    assert len(receiver.requests) == 6
    hook = later["/hook"]
    assert [a["status"] for a in hook["alerts"]] == ["resolved"]
    assert hook["status"] == "resolved"
    assert hook["commonLabels"]["alertname"] == "app.flap"
    (posted,) = later["/am/api/v2/alerts"]
    assert posted["labels"]["alertname"] == "app.flap" and "endsAt" in posted
    (block,) = later["/slack"]["blocks"]
    assert "[RESOLVED]" in block["text"]["text"]
    assert len(later["/slack"]["text"].splitlines()) == 1
    store.close()
