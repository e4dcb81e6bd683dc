"""Slack, webhook and Alertmanager channels against a real HTTP receiver on 127.0.0.1.

:class:`Receiver` is also used by ``test_notify.py``: it records every POST and answers
from a script (``200``, ``500``, ``429`` with ``Retry-After``, ``"hold"`` until released,
``"slow"`` until the test ends).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metricskit.alerting.channels import (
    AlertmanagerChannel,
    DeliveryError,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from metricskit.alerting.channels.alertmanager import (
    alert_annotations,
    alert_labels,
    webhook_payload,
)
from metricskit.alerting.events import (
    EVERY_ALERTMANAGER,
    AlertEvent,
    AlertState,
    Severity,
    fingerprint_of,
)
from metricskit.model import Tags

T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
SECRET_PATH = "/services/T000/B000/SECRETTOKEN"


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float  # time.monotonic()


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "answer"  # "answer" | "hold" (until gate) | "slow" (until the test ends)


class Receiver:
    """A real HTTP server capturing JSON POSTs; replies follow ``script`` then 200."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.script: deque[Reply] = deque()
        self.gate = threading.Event()
        self.finished = threading.Event()
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver.cond:
                    receiver.requests.append(
                        Captured(self.path, dict(self.headers), json.loads(raw), time.monotonic())
                    )
                    reply = receiver.script.popleft() if receiver.script else Reply()
                    receiver.cond.notify_all()
                if reply.mode == "hold":
                    receiver.gate.wait(30)
                elif reply.mode == "slow":
                    receiver.finished.wait(30)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    body = b'{"ok": true}' if reply.status < 300 else b"try later"
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = SECRET_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 30) -> list[Captured]:
        """Block until ``count`` requests arrived (fails the test after ``timeout``)."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"expected {count} requests, got {len(self.requests)}"
            )
            return list(self.requests)

    def close(self) -> None:
        self.gate.set()
        self.finished.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def make_event(
    rule: str = "system.high_memory",
    *,
    state: AlertState = AlertState.FIRING,
    severity: Severity = Severity.CRITICAL,
    tags: dict[str, str] | None = None,
    value: float = 92.5,
    channels: tuple[str, ...] = ("slack", "log"),
    summary: str = "High Memory Usage",
    at_ns: int = T0,
) -> AlertEvent:
    t = Tags({"host": "web1"} if tags is None else tags)
    resolved = state is AlertState.RESOLVED
    return AlertEvent(
        rule=rule,
        metric="system.memory.usage_percent",
        tags=t,
        state=state,
        severity=severity,
        value=value,
        threshold=90.0,
        operator="gt",
        at_ns=at_ns + (300_000_000_000 if resolved else 0),
        active_since_ns=at_ns - 60_000_000_000,
        fired_at_ns=at_ns if state in (AlertState.FIRING, AlertState.RESOLVED) else None,
        firing_value=92.5 if resolved else None,
        summary=summary,
        description="Memory above 90% for 1m",
        channels=channels,
        fingerprint=fingerprint_of(rule, t),
    )


# -- slack ----------------------------------------------------------------------------------


def test_slack_posts_to_the_severity_channel_with_default_fallback(receiver: Receiver) -> None:
    slack = SlackChannel(
        receiver.url(), channels={"default": "#alerts", "critical": "#critical-alerts"}
    )
    slack.send(
        [
            make_event(severity=Severity.CRITICAL),
            make_event("app.slow_response", severity=Severity.WARNING),
            # another series of the rule (one alert is listed once per batch)
            make_event(
                "app.slow_response",
                state=AlertState.RESOLVED,
                severity=Severity.WARNING,
                tags={"host": "web2"},
            ),
        ]
    )
    reqs = receiver.wait_for(2)
    assert [r.path for r in reqs] == [SECRET_PATH, SECRET_PATH]
    by_channel = {r.body["channel"]: r.body for r in reqs}
    assert set(by_channel) == {"#critical-alerts", "#alerts"}
    critical = by_channel["#critical-alerts"]
    assert "High Memory Usage - system.memory.usage_percent = 92.5%" in critical["text"]
    assert "CRITICAL" in critical["text"] and "host=web1" in critical["text"]
    assert len(critical["blocks"]) == 1
    assert critical["blocks"][0]["text"]["type"] == "mrkdwn"
    warning = by_channel["#alerts"]
    assert len(warning["blocks"]) == 2
    assert "[RESOLVED]" in warning["text"] and "was 92.5% when it fired" in warning["text"]


def test_slack_without_channels_omits_channel_and_caps_blocks(receiver: Receiver) -> None:
    events = [make_event(f"r.rule{i}") for i in range(60)]
    SlackChannel(receiver.url()).send(events)
    (req,) = receiver.wait_for(1)
    assert "channel" not in req.body
    assert len(req.body["blocks"]) == 49
    assert "and 12 more" in json.dumps(req.body["blocks"][-1])
    assert req.body["text"].count("\n") == 59


def test_pending_events_are_not_sent_to_receivers(receiver: Receiver) -> None:
    SlackChannel(receiver.url()).send([make_event(state=AlertState.PENDING)])
    WebhookChannel(receiver.url("/hook")).send([make_event(state=AlertState.PENDING)])
    SlackChannel(receiver.url()).send([make_event()])
    reqs = receiver.wait_for(1)
    assert len(reqs) == 1 and reqs[0].path == SECRET_PATH


def test_slack_error_messages_and_repr_hide_the_webhook_path(receiver: Receiver) -> None:
    receiver.script.append(Reply(404))
    slack = SlackChannel(receiver.url())
    with pytest.raises(DeliveryError) as info:
        slack.send([make_event()])
    assert "HTTP 404" in str(info.value)
    assert not info.value.retryable
    assert "SECRETTOKEN" not in str(info.value)
    assert info.value.__cause__ is None
    assert "SECRETTOKEN" not in repr(slack)
    assert slack.describe()["webhook_url"] == f"http://127.0.0.1:{receiver.port}/<redacted>"


# -- webhook (Alertmanager format) ------------------------------------------------------------


def test_webhook_sends_alertmanager_v4_payload_grouped_by_rule(receiver: Receiver) -> None:
    hook = WebhookChannel(
        receiver.url("/hook"),
        headers={"Authorization": "Bearer SECRETBEARER"},
        receiver="ops",
        external_url="http://metricskit.local",
    )
    hook.send(
        [
            make_event(tags={"host": "web1"}),
            make_event(tags={"host": "web2"}, state=AlertState.RESOLVED, value=71.0),
            make_event("app.slow_response", severity=Severity.WARNING),
        ]
    )
    reqs = receiver.wait_for(2)
    assert all(r.headers["Authorization"] == "Bearer SECRETBEARER" for r in reqs)
    body = next(r.body for r in reqs if r.body["groupLabels"]["alertname"] == "system.high_memory")
    assert set(body) == {
        "receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations",
        "externalURL", "version", "groupKey", "truncatedAlerts",
    }  # fmt: skip
    assert body["version"] == "4"
    assert body["receiver"] == "ops"
    assert body["status"] == "firing"
    assert body["externalURL"] == "http://metricskit.local"
    assert body["groupKey"] == '{}:{alertname="system.high_memory"}'
    assert body["truncatedAlerts"] == 0
    assert body["commonLabels"] == {
        "alertname": "system.high_memory",
        "severity": "critical",
        "metric": "system.memory.usage_percent",
    }
    firing, resolved = body["alerts"]
    assert set(firing) == {
        "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"
    }  # fmt: skip
    assert firing["status"] == "firing"
    assert firing["labels"]["host"] == "web1"
    assert firing["startsAt"] == "2024-05-01T12:00:00.000Z"
    assert firing["endsAt"] == "0001-01-01T00:00:00Z"
    assert firing["annotations"]["summary"] == "High Memory Usage"
    assert firing["annotations"]["value"] == "92.5"
    assert firing["fingerprint"] == fingerprint_of("system.high_memory", Tags(host="web1"))
    assert resolved["status"] == "resolved"
    assert resolved["endsAt"] == "2024-05-01T12:05:00.000Z"
    assert resolved["annotations"]["firing_value"] == "92.5"
    assert resolved["annotations"]["value"] == "71.0"
    assert "SECRETBEARER" not in repr(hook)
    assert hook.describe()["headers"] == ["Authorization"]


def test_webhook_truncates_and_all_resolved_status() -> None:
    events = [make_event(tags={"host": f"h{i}"}, state=AlertState.RESOLVED) for i in range(5)]
    body = webhook_payload(events, receiver="r", max_alerts=2)
    assert body["truncatedAlerts"] == 3
    assert len(body["alerts"]) == 2
    assert body["status"] == "resolved"
    assert "host" not in body["commonLabels"]


def test_labels_rename_colliding_tags() -> None:
    labels = alert_labels(make_event(tags={"severity": "sev1", "metric": "m", "host": "a"}))
    assert labels["severity"] == "critical"
    assert labels["exported_severity"] == "sev1"
    assert labels["exported_metric"] == "m"
    assert labels["metric"] == "system.memory.usage_percent"
    assert labels["host"] == "a"


def test_a_groups_file_rules_alert_is_described_as_prometheus_describes_it() -> None:
    """``alertname`` is the rule's ``alert:`` name (over a tag of that name), the labels
    are the alert's own (no ``severity``/``metric`` added), the annotations the rule's."""
    event = dataclasses.replace(
        make_event("api.HighErrors", tags={"job": "api", "alertname": "x", "severity": "page"}),
        alertname="HighErrors",
        annotations=(("summary", "api fails"),),
    )
    assert alert_labels(event) == {"alertname": "HighErrors", "job": "api", "severity": "page"}
    assert alert_annotations(event) == {"summary": "api fails"}
    payload = webhook_payload([event], receiver="r")
    assert payload["groupLabels"] == {"alertname": "HighErrors"}
    assert payload["groupKey"] == '{}:{alertname="HighErrors"}'


def test_alertmanager_channel_posts_v2_alerts(receiver: Receiver) -> None:
    am = AlertmanagerChannel(receiver.url("/am/"), resolve_timeout_seconds=600)
    am.send([make_event(), make_event(state=AlertState.RESOLVED, tags={"host": "web2"})])
    (req,) = receiver.wait_for(1)
    assert req.path == "/am/api/v2/alerts"
    firing, resolved = req.body
    assert firing["labels"]["alertname"] == "system.high_memory"
    assert firing["startsAt"] == "2024-05-01T12:00:00.000Z"
    assert firing["endsAt"] == "2024-05-01T12:10:00.000Z"
    assert resolved["endsAt"] == "2024-05-01T12:05:00.000Z"
    assert "generatorURL" not in firing


def test_a_groups_file_alert_goes_to_every_alertmanager_and_the_log(
    receiver: Receiver, tmp_path: Path
) -> None:
    """Prometheus sends every alert to all its Alertmanagers; a ``groups:`` file cannot name
    channels, so its rules route to the log and to every configured Alertmanager channel."""
    import metricskit as mk
    from metricskit.alerting.notify import Notifier, routing_warnings
    from metricskit.alerting.rules_model import load_rules

    rules = load_rules(
        "groups:\n- name: api\n  rules:\n  - alert: Up\n    expr: up > 0\n", text=True
    )
    (rule,) = rules.alerts
    assert rule.channels == ("log", EVERY_ALERTMANAGER)
    assert routing_warnings(rules.alerts, ["log"]) == []  # no Alertmanager: no warning
    store = mk.open_store("memory://")
    store.write([mk.Series(mk.SeriesKey.of("up"), np.array([T0]), np.array([1.0]))])
    channels = [
        AlertmanagerChannel(receiver.url("/one/"), name="am1"),
        AlertmanagerChannel(receiver.url("/two/"), name="am2"),
        LogChannel(tmp_path / "alerts.log"),
    ]
    with Notifier(channels) as notifier:
        engine = mk.RuleEngine(rules, store, notifier=notifier)
        engine.evaluate(T0 / 1e9 + 1)
        assert notifier.flush(timeout=30)
        assert notifier.unknown_channels == {}
    paths = sorted(r.path for r in receiver.wait_for(2))
    assert paths == ["/one/api/v2/alerts", "/two/api/v2/alerts"]
    assert "Up" in (tmp_path / "alerts.log").read_text()
    fresh = mk.open_store("memory://")  # the first engine's store holds the alert's state
    fresh.write([mk.Series(mk.SeriesKey.of("up"), np.array([T0]), np.array([1.0]))])
    with Notifier([LogChannel(tmp_path / "only.log")]) as notifier:  # no Alertmanager
        mk.RuleEngine(rules, fresh, notifier=notifier).evaluate(T0 / 1e9 + 1)
        assert notifier.flush(timeout=30)
        assert notifier.unknown_channels == {}
    assert "Up" in (tmp_path / "only.log").read_text()
