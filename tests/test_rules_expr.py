"""Expression rules (``expr:``): loading with lines, templating, recording, restarts.

The alert timelines themselves are compared with Prometheus in
tests/interop/test_promtool_expr_rules.py; here: what a user gets wrong, and that the
state of an expression alert survives a second process on the same SQLite file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from metricskit import Series, SeriesKey, Store, open_store
from metricskit.alerting._templates import expand, go_float, humanize
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.rules_model import AlertRule, load_rules
from metricskit.errors import ConfigError

NS = 10**9

PROM_FILE = """\
groups:
  - name: api
    rules:
      - record: job:errors:sum
        expr: sum by (job) (errors)
      - alert: ErrorsHigh
        expr: job:errors:sum > 5
        for: 2m
        labels:
          severity: critical
          where: "{{ $labels.job }}"
        annotations:
          summary: "{{ $labels.job }} has {{ $value }} errors"
"""


def _load_error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(str(path))
    return info.value


def test_a_prometheus_rule_file_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(PROM_FILE)
    rules = load_rules(str(path))
    (alert,) = rules.alerts
    assert alert.name == "api.ErrorsHigh"
    assert alert.duration_seconds == 120
    assert alert.severity.value == "critical"
    assert [r.record for r in rules.expr_recording] == ["job:errors:sum"]


def test_seed_alerts_and_prometheus_groups_share_a_file(tmp_path: Path) -> None:
    seed = "alerts:\n  system:\n    cpu:\n      metric: system.cpu\n      threshold: 1\n"
    path = tmp_path / "rules.yml"
    path.write_text(seed + "      operator: gt\n" + PROM_FILE)
    assert [r.name for r in load_rules(str(path)).alerts] == ["system.cpu", "api.ErrorsHigh"]


def test_bad_promql_is_a_config_error_at_its_line(tmp_path: Path) -> None:
    err = _load_error(tmp_path, PROM_FILE.replace("job:errors:sum > 5", "job:errors:sum >"))
    assert err.line is not None and err.line >= 5
    assert "PromQL" in str(err)


def test_unsupported_template_is_a_config_error_not_a_literal(tmp_path: Path) -> None:
    err = _load_error(tmp_path, PROM_FILE.replace("{{ $value }}", "{{ $value | humanize1024 }}"))
    assert "unsupported template action" in str(err)
    assert err.line is not None


def test_expr_and_metric_do_not_mix(tmp_path: Path) -> None:
    text = "alerts:\n  g:\n    r:\n      expr: up == 0\n      metric: up\n"
    err = _load_error(tmp_path, text)
    assert "metric belongs to a metric/threshold rule" in str(err)
    assert err.line == 5


def test_a_rule_needs_alert_or_record(tmp_path: Path) -> None:
    err = _load_error(tmp_path, "groups:\n  - name: g\n    rules:\n      - expr: up\n")
    assert "exactly one of alert: or record:" in str(err)


def test_templates() -> None:
    assert go_float(0.5) == "0.5" and go_float(1e6) == "1e+06" and go_float(3.0) == "3"
    assert humanize(1500) == "1.5k" and humanize(0.25) == "250m" and humanize(0) == "0"
    text = "{{ $labels.job }}/{{ .Labels.nope }}: {{ humanize $value }}"
    assert expand(text, {"job": "api"}, 2500) == "api/: 2.5k"


def test_humanize_percentage_and_duration_print_as_prometheus() -> None:
    # Prometheus' template reference examples; the promtool differential checks the rest
    assert expand("{{ $value | humanizePercentage }}", {}, 0.1234567) == "12.35%"
    durations = {899.99: "14m 59s", 90061: "1d 1h 1m 1s", 2.5: "2.5s", 0.25: "250ms", 0: "0s"}
    for seconds, text in durations.items():
        assert expand("{{ humanizeDuration $value }}", {}, seconds) == text


def _write(store_url: str, t: int, per_job: dict[str, float]) -> None:
    store = open_store(store_url)
    store.write(
        [
            Series(SeriesKey.of("errors", {"job": job}), np.array([t * NS]), np.array([v]))
            for job, v in per_job.items()
        ]
    )
    store.close()


def test_recording_and_alert_in_one_engine(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(PROM_FILE)
    store = open_store("memory://")
    engine = RuleEngine.from_yaml(str(path), store, notifier=None)
    store.write(
        [
            Series(SeriesKey.of("errors", {"job": j}), np.array([0, 60 * NS]), np.array([v, v]))
            for j, v in (("api", 9.0), ("web", 1.0))
        ]
    )
    engine.evaluate(now=0)
    engine.evaluate(now=60)
    (pending,) = engine.active_alerts()
    assert pending.state is AlertState.PENDING
    assert dict(pending.tags) == {"job": "api", "severity": "critical", "where": "api"}
    assert pending.summary == "api has 9 errors"
    recorded = store.promql("job:errors:sum", time=60)
    assert sorted(recorded["value"]) == [1.0, 9.0]


_CHILD = r"""
import json, sys
from metricskit import open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.notify import Notifier
from metricskit.testing.channels import CapturingChannel

url, rules, times = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
capture = CapturingChannel("log")
notifier = Notifier([capture])
engine = RuleEngine.from_yaml(rules, open_store(url), notifier=notifier)
restored = [[a.state.value, dict(a.tags)] for a in engine.active_alerts()]
for t in times:
    engine.evaluate(now=t)
assert notifier.flush(timeout=60)  # delivery is asynchronous
notifier.close()
print(json.dumps({
    "restored": restored,
    "sent": [e.state.value for e in capture.events],
    "active": [[a.state.value, a.since_ns] for a in engine.active_alerts()],
}))
"""


def _child(url: str, rules: Path, times: list[int]) -> dict[str, list[object]]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(rules), json.dumps(times)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, list[object]] = json.loads(out.stdout)
    return result


def test_an_expression_alert_survives_a_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(PROM_FILE)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    for t in range(0, 600, 60):
        _write(url, t, {"api": 9.0})
    first = _child(url, rules, [0, 60, 120, 180])
    assert first["sent"] == ["firing"]  # pending at 0, firing at 120 (for: 2m)
    assert first["active"] == [["firing", 0]]
    second = _child(url, rules, [240, 300])
    # the second process goes on where the first stopped: same since, no second notification
    assert second["restored"] == [
        ["firing", {"job": "api", "severity": "critical", "where": "api"}]
    ]
    assert second["sent"] == []
    assert second["active"] == [["firing", 0]]


def test_an_expression_rule_in_code() -> None:
    rule = AlertRule.create("g.up", expr="vector(1)", labels={"team": "x"})
    engine = RuleEngine([rule], open_store("memory://"))
    engine.evaluate(now=0)
    (alert,) = engine.active_alerts()
    assert alert.state is AlertState.FIRING and dict(alert.tags) == {"team": "x"}


def test_a_monitoring_yaml_with_groups_keeps_them_with_the_builtin_rules(tmp_path: Path) -> None:
    from metricskit.alerting.performance_rules import default_rules, with_defaults
    from metricskit.config import load_config

    path = tmp_path / "monitoring.yaml"
    path.write_text(PROM_FILE)
    config = load_config(str(path))
    thresholds = config.performance.performance_thresholds()
    rules = with_defaults(config.rules, default_rules(thresholds))
    assert [r.record for r in rules.expr_recording] == ["job:errors:sum"]
    assert "api.ErrorsHigh" in [r.name for r in rules.alerts]
    assert len(rules.alerts) > 1  # the built-in performance rules too


def test_the_prometheus_api_lists_expression_rules(tmp_path: Path) -> None:
    from metricskit.service import MonitoringService

    config = "storage: {type: sqlite, connection_string: metrics.db}\n" + PROM_FILE
    (tmp_path / "monitoring.yaml").write_text(config)
    service = MonitoringService(str(tmp_path / "monitoring.yaml"))
    try:
        server = service.start_server(port=0)
        try:
            body = requests.get(f"{server.url}/api/v1/rules", timeout=30).json()
        finally:
            server.stop()
    finally:
        service.close()
    (group,) = [g for g in body["data"]["groups"] if g["name"] == "api"]
    assert [(r["type"], r["name"], r["query"]) for r in group["rules"]] == [
        ("recording", "job:errors:sum", "sum by (job) (errors)"),  # in file order
        ("alerting", "ErrorsHigh", "job:errors:sum > 5"),  # its own name, as in Prometheus
    ]
    # the file it was loaded from; the service's evaluation interval (the seed's 60 s)
    assert (group["file"], group["interval"]) == (str(tmp_path / "monitoring.yaml"), 60)
    assert [r["health"] for r in group["rules"]] == ["unknown", "unknown"]  # not evaluated
    assert group["rules"][1]["labels"]["where"] == "{{ $labels.job }}"


TEMPLATED = """\
groups:
  - name: t
    interval: 30s
    limit: 10
    rules:
      - alert: Deep
        expr: depth > 5
        labels: {severity: critical, team: "{{ $labels.queue }}-ops", gone: "{{ $labels.nope }}"}
        annotations:
          summary: "{{ $labels.__name__ }} {{ $labels.queue }}={{ $value }}"
          severity: "[{{ $labels.severity }}]"
          ext: "[{{ $externalLabels.env }}][{{ $externalURL }}][{{ .ExternalURL }}]"
      - record: depth:max
        expr: max(depth)
      - alert: Clash
        expr: depth > 0
        labels: {queue: same}
"""


def test_expression_templates_see_the_result_sample_as_prometheus_does() -> None:
    """$labels is the result sample's labels (``__name__`` included, the rule's own labels
    not), $value its value, at each evaluation; a missing label, ``$externalLabels`` and
    ``$externalURL`` are empty; a missing label empties (drops) a templated label."""
    store = open_store("memory://")
    rules = load_rules(TEMPLATED, text=True)
    engine = RuleEngine(rules, store)
    store.write([Series(SeriesKey.of("depth", {"queue": "q1"}), np.array([0]), np.array([7.0]))])
    engine.evaluate(now=0)
    store.write(
        [Series(SeriesKey.of("depth", {"queue": "q1"}), np.array([60 * NS]), np.array([8.5]))]
    )
    engine.evaluate(now=60)
    deep = [a for a in engine.active_alerts() if a.alertname == "Deep"]
    (alert,) = deep
    assert dict(alert.tags) == {"queue": "q1", "severity": "critical", "team": "q1-ops"}
    notes = {"summary": "depth q1=8.5", "severity": "[]", "ext": "[][][]"}
    assert dict(alert.annotations) == notes
    assert alert.summary == "depth q1=8.5"  # the latest evaluation's value


def test_colliding_alert_labels_are_an_error_of_that_rule_reported_by_the_api() -> None:

    from metricskit.server.app import MetricsServer

    store = open_store("memory://")
    engine = RuleEngine(load_rules(TEMPLATED, text=True), store)
    engine.evaluation_interval_seconds = 15.0
    with MetricsServer(store, port=0, alerts=engine) as server:
        _check_rules_api(f"{server.url}/api/v1/rules", store, engine)


def _check_rules_api(url: str, store: Store, engine: RuleEngine) -> None:
    before = requests.get(url, timeout=30).json()["data"]["groups"]
    assert [r["health"] for r in before[0]["rules"]] == ["unknown"] * 3
    assert before[0]["lastEvaluation"] == "0001-01-01T00:00:00Z"
    _depths_in(store, {"q1": 7.0, "q2": 1.0})
    engine.evaluate(now=60)
    (group,) = requests.get(url, timeout=30).json()["data"]["groups"]
    assert (group["name"], group["interval"], group["limit"]) == ("t", 30, 10)
    assert group["lastEvaluation"] == "1970-01-01T00:01:00Z"
    deep, record, clash = group["rules"]  # in file order, the record between the alerts
    assert (deep["name"], deep["health"], deep["state"]) == ("Deep", "ok", "firing")
    assert (record["type"], record["health"]) == ("recording", "ok")
    assert clash["health"] == "err" and clash["alerts"] == []
    assert clash["lastError"] == (
        "vector contains metrics with the same labelset after applying alert labels"
    )
    assert list(clash) == [
        "state", "name", "query", "duration", "keepFiringFor", "labels", "annotations",
        "alerts", "health", "lastError", "evaluationTime", "lastEvaluation", "type",
    ]  # fmt: skip
    only = requests.get(url, params={"type": "RECORD"}, timeout=30).json()["data"]["groups"]
    assert [r["name"] for r in only[0]["rules"]] == ["depth:max"]
    bad = requests.get(url, params={"type": "x"}, timeout=30)
    assert (bad.status_code, bad.json()["errorType"]) == (400, "bad_data")
    assert bad.json()["error"] == 'invalid parameter "type": not supported value "x"'


def _depths_in(store: Store, per_queue: dict[str, float], at: int = 60) -> None:
    store.write(
        [
            Series(SeriesKey.of("depth", {"queue": q}), np.array([at * NS]), np.array([v]))
            for q, v in per_queue.items()
        ]
    )


def test_a_metric_rules_annotations_keep_the_alerts_labels() -> None:
    """The seed's metric/threshold rules template annotations with the alert's labels
    (the series' tags) and latest value, as docs/rules.md says."""
    rule = AlertRule.create(
        "sys.cpu",
        metric="system.cpu.usage_percent",
        threshold=80,
        operator="gt",
        annotations={"summary": "{{ $labels.host }} at {{ $value }}"},
    )
    store = open_store("memory://")
    key = SeriesKey.of("system.cpu.usage_percent", {"host": "web1"})
    store.write([Series(key, np.array([0]), np.array([93.0]))])
    engine = RuleEngine([rule], store)
    engine.evaluate(now=0)
    (alert,) = engine.active_alerts()
    assert alert.summary == "web1 at 93" and alert.alertname is None


LIMITED = """\
groups:
  - name: lim
    limit: 1
    rules:
      - record: depth:copy
        expr: depth
      - alert: Deep
        expr: depth > 5
"""


def test_a_group_limit_fails_the_rule_and_drops_its_alerts_as_prometheus_does() -> None:
    store = open_store("memory://")
    engine = RuleEngine(load_rules(LIMITED, text=True), store)
    _depths_in(store, {"q1": 7.0, "q2": 1.0})
    events = engine.evaluate(now=60)
    assert [(e.state.value, e.tags["queue"]) for e in events] == [
        ("pending", "q1"),
        ("firing", "q1"),
    ]
    assert store.promql("depth:copy", time=60).empty  # two series over a limit of 1
    assert engine.rule_evaluations()["lim.depth:copy"].error == "exceeded limit of 1 with 2 series"
    _depths_in(store, {"q1": 7.0, "q2": 9.0}, at=120)
    events = engine.evaluate(now=120)
    # over the limit: the firing alert resolves, no new one starts
    assert [(e.state.value, e.tags["queue"]) for e in events] == [("resolved", "q1")]
    assert engine.active_alerts() == []
    assert engine.rule_evaluations()["lim.Deep"].error == "exceeded limit of 1 with 2 alerts"
