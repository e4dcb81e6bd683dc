"""The alertmanager and webhook channels against Debian's real Alertmanager.

Alertmanager runs on 127.0.0.1 with a temp storage path and clustering off; its route
sends to a webhook receiver in this test, so the same run also shows what a real
Alertmanager's webhook payload looks like next to ours.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from metricskit.alerting.channels import AlertmanagerChannel
from metricskit.alerting.channels.alertmanager import webhook_payload
from metricskit.alerting.events import AlertState
from metricskit.alerting.notify import Notifier, RetryPolicy
from tests.services import binary, free_port, running
from tests.test_channels_http import Receiver, make_event

pytestmark = pytest.mark.services

CONFIG = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}
        send_resolved: true
"""


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@contextmanager
def _alertmanager(work: Path, hook: Receiver) -> Iterator[str]:
    """A real Alertmanager sending to ``hook``; yields its base URL."""
    exe = binary("prometheus-alertmanager")
    (work / "alertmanager.yml").write_text(CONFIG.format(hook=hook.url("/am-hook")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        exe,
        f"--config.file={work / 'alertmanager.yml'}",
        f"--storage.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(argv, f"{url}/-/ready", log=work / "alertmanager.log"):
        yield url


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, hook: Receiver) -> Iterator[str]:
    with _alertmanager(tmp_path_factory.mktemp("alertmanager"), hook) as url:
        yield url


def _alerts(url: str, **params: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/v2/alerts", params=params, timeout=10)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return [a for a in alerts if a["labels"]["alertname"] == "interop.high_memory"]


def _until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Alertmanager: {what} did not happen within {timeout}s")
        time.sleep(0.1)


def test_firing_then_resolved_alert_round_trips(alertmanager: str, hook: Receiver) -> None:
    now = time.time_ns()
    firing = make_event(
        "interop.high_memory", tags={"host": "web1"}, channels=("alertmanager",), at_ns=now
    )
    channel = AlertmanagerChannel(alertmanager, generator_url="http://metricskit.local/rules")
    with Notifier([channel], retry=RetryPolicy(3, 0.05, 0.1)) as notifier:
        notifier.notify([firing])
        assert notifier.flush(30)
        assert notifier.stats()["alertmanager"]["sent"] == 1

        (alert,) = _until(lambda: _alerts(alertmanager), "the firing alert showing up")
        assert alert["status"]["state"] == "active"
        assert alert["labels"] == {
            "alertname": "interop.high_memory",
            "severity": "critical",
            "metric": "system.memory.usage_percent",
            "host": "web1",
        }
        assert alert["annotations"]["summary"] == "High Memory Usage"
        assert alert["annotations"]["value"] == "92.5"
        assert alert["generatorURL"] == "http://metricskit.local/rules"
        assert alert["startsAt"].startswith(time.strftime("%Y-%m-%d", time.gmtime(now / 1e9)))

        # Alertmanager passes it on to its webhook receiver: same shape as ours.
        sent = _until(
            lambda: [r.body for r in hook.requests if r.body["status"] == "firing"],
            "the webhook notification",
        )[0]
        ours = webhook_payload([firing], receiver="hook")
        assert set(sent) == set(ours)
        assert set(sent["alerts"][0]) == set(ours["alerts"][0])
        assert sent["version"] == ours["version"] == "4"
        assert sent["groupKey"] == ours["groupKey"]
        assert sent["alerts"][0]["labels"] == ours["alerts"][0]["labels"]
        assert sent["alerts"][0]["endsAt"] == ours["alerts"][0]["endsAt"]

        resolved = make_event(
            "interop.high_memory",
            tags={"host": "web1"},
            state=AlertState.RESOLVED,
            channels=("alertmanager",),
            at_ns=now - 300_000_000_000,  # resolved "now" (make_event adds 5m)
        )
        notifier.notify([resolved])
        assert notifier.flush(30)
        assert notifier.stats()["alertmanager"]["sent"] == 2
        _until(lambda: not _alerts(alertmanager), "the alert leaving the active list")
        _until(
            lambda: [r.body for r in hook.requests if r.body["status"] == "resolved"],
            "the resolved webhook notification",
        )


ALWAYS_FIRING = """\
  - name: always
    rules:
      - alert: AlwaysFiring
        expr: queue_depth > 0
        labels: {severity: page, team: "{{ $labels.queue }}-ops"}
        annotations: {summary: "{{ $labels.__name__ }} {{ $value }} {{ $labels.severity }}"}
"""


def _held(url: str) -> list[tuple[list[Any], list[Any]]]:
    """The alerts an Alertmanager holds: (labels, annotations), sorted."""
    response = requests.get(f"{url}/api/v2/alerts", timeout=10)
    response.raise_for_status()
    return sorted(
        (sorted(a["labels"].items()), sorted(a["annotations"].items())) for a in response.json()
    )


def test_a_prometheus_rule_files_alerts_reach_alertmanager_as_prometheus_sends_them(
    tmp_path: Path, hook: Receiver
) -> None:
    """A random ``groups:`` file evaluated by metricskit's engine (its alerts pushed by the
    alertmanager channel) and by a real Prometheus 2.42, each pushing to its own real
    Alertmanager: both hold the same firing alerts, with the same labels (``alertname``
    the rule's ``alert:`` name, no ``severity`` or ``metric`` added) and annotations."""
    from metricskit.alerting.engine import RuleEngine
    from tests.interop.prom import (
        backfilled_prometheus,
        differential_seed,
        openmetrics_text,
        store_of,
    )
    from tests.interop.test_prom_api_prometheus import random_rule_file

    rng = random.Random(differential_seed())
    rule_file = random_rule_file(rng) + ALWAYS_FIRING
    print(rule_file)
    now_ms = int(time.time()) * 1000
    times = range(now_ms - 1_800_000, now_ms, 15_000)
    data = [
        ("queue_depth", {"queue": f"q{i}"}, [(t, v) for t in times])
        for i, v in enumerate(rng.sample([0.5, 2.0, 3.0, 7.5, 9.0, 12.0], rng.randint(2, 4)))
    ]
    store = store_of(data)
    (tmp_path / "rules.yml").write_text(rule_file)
    for work in ("ours", "theirs", "prometheus"):
        (tmp_path / work).mkdir()
    with _alertmanager(tmp_path / "ours", hook) as our_am:
        # a groups file's rules name the "log" channel; here the fallback is Alertmanager
        channel = AlertmanagerChannel(our_am)
        with Notifier([channel], fallback="alertmanager", retry=RetryPolicy(3, 0.05, 0.1)) as n:
            engine = RuleEngine.from_yaml(str(tmp_path / "rules.yml"), store, notifier=n)
            engine.evaluate(now_ms / 1000)
            assert n.flush(30)
        firing = [a for a in engine.active_alerts() if a.state is AlertState.FIRING]
        ours = _until(lambda: len(held := _held(our_am)) == len(firing) and held, "our alerts")
    with (
        _alertmanager(tmp_path / "theirs", hook) as their_am,
        backfilled_prometheus(
            tmp_path / "prometheus",
            openmetrics_text(data),
            rules=rule_file,
            alertmanager=their_am.removeprefix("http://"),
        ) as prom,
    ):

        def sent() -> list[Any]:
            body = requests.get(f"{prom}/api/v1/alerts", timeout=30).json()
            wanted = [a for a in body["data"]["alerts"] if a["state"] == "firing"]
            held = _held(their_am)
            return held if wanted and len(held) == len(wanted) else []

        theirs = _until(sent, "Prometheus' alerts", timeout=90)
    assert ours == theirs
