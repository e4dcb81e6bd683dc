"""Expression rules against Prometheus itself: one Prometheus rule file, two engines.

Each scenario is a rule file in Prometheus' format (``groups: ... rules:``) and input
series. metricskit loads the file unchanged (``RuleEngine.from_yaml``) and evaluates it
every minute over the series; the alerts it finds firing (labels and templated
annotations) become ``alert_rule_test`` expectations, its pending ones
``ALERTS{alertstate="pending"}`` expectations. ``promtool test rules`` then runs the same
file over the same series and fails wherever Prometheus disagrees.

Prometheus 2 ranges include their left edge and metricskit's (Prometheus 3's) do not, so
samples sit every minute and windows are 270s: no sample lies on a window's edge.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from metricskit import Series, SeriesKey, Store, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.performance_rules import default_rules
from metricskit.query._select import candidate
from metricskit.query.performance import PerformanceThresholds
from metricskit.recorder import Recorder
from metricskit.testing import ManualClock
from tests.interop.prom import promtool_values
from tests.services import binary

NS = 10**9
EVALS = 20

# one alert per rule; (alertname, labels, annotations) per firing/pending alert
Timeline = list[tuple[int, list[tuple[str, dict[str, str], dict[str, str]]], list[Any]]]


@dataclass
class Scenario:
    """A Prometheus rule group and its input: series text -> one value per minute."""

    name: str
    rules: list[dict[str, Any]]
    series: dict[str, list[float | None]]


def _counter(per_minute: list[float]) -> list[float | None]:
    total, out = 0.0, []
    for step in per_minute:
        total += step
        out.append(total)
    return list(out)


SCENARIOS = [
    Scenario(
        "error_ratio_with_for",
        [
            {
                "record": "job:http_requests:rate270s",
                "expr": "sum by (job) (rate(http_requests_total[270s]))",
            },
            {
                "alert": "HighErrorRatio",
                "expr": "sum by (job) (rate(http_errors_total[270s]))"
                " / job:http_requests:rate270s > 0.05",
                "for": "3m",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "{{ $labels.job }} error ratio {{ $value | humanize }}",
                },
            },
        ],
        {
            'http_requests_total{job="api",instance="a"}': _counter([60.0] * EVALS),
            'http_requests_total{job="api",instance="b"}': _counter([60.0] * EVALS),
            'http_errors_total{job="api",instance="a"}': _counter(
                [0.0] * 4 + [12.0] * 8 + [0.0] * 3 + [30.0] * 5
            ),
            'http_errors_total{job="api",instance="b"}': _counter([1.0] * EVALS),
            'http_requests_total{job="web",instance="c"}': _counter([100.0] * EVALS),
            'http_errors_total{job="web",instance="c"}': _counter(
                [1.0] * 6 + [20.0] * 3 + [1.0] * 11
            ),
        },
    ),
    Scenario(
        "group_left_join",
        [
            {
                "alert": "HighLoad",
                "expr": "cpu_load * on(instance) group_left(team) instance_owner > 0.8",
                "for": "2m",
                "keep_firing_for": "2m",
                "labels": {"severity": "warning", "owner": "{{ $labels.team }}"},
                "annotations": {"description": "load {{ $value }} on {{ $labels.instance }}"},
            }
        ],
        {
            'cpu_load{instance="a"}': [0.5] * 3 + [0.9] * 6 + [0.2] * 6 + [0.95] * 5,
            'cpu_load{instance="b"}': [0.85, 0.9, 0.5] * 6 + [0.9, 0.9],
            'cpu_load{instance="c"}': [0.99] * EVALS,  # no owner: the join drops it
            'instance_owner{instance="a",team="db"}': [1.0] * EVALS,
            'instance_owner{instance="b",team="web"}': [1.0] * EVALS,
        },
    ),
    Scenario(
        "absent_heartbeat",
        [
            {
                "alert": "BatchHeartbeatMissing",
                "expr": 'absent(heartbeat_total{job="batch"})',
                "for": "2m",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "no heartbeat from {{ $labels.job }}"},
            }
        ],
        # the job starts reporting at minute 8 (a series going silent is absent once its
        # newest sample leaves the 5m lookback, whose left edge Prometheus 2 includes and
        # Prometheus 3 does not: not comparable with this promtool)
        {'heartbeat_total{job="batch"}': [None] * 8 + [float(i) for i in range(12)]},
    ),
]


def _parse_series(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition("{")
    labels = dict(
        (k, v.strip('"')) for k, v in (p.split("=", 1) for p in rest.rstrip("}").split(",") if p)
    )
    return name, labels


def _run_metricskit(sc: Scenario, rule_file: Path) -> Timeline:
    store = open_store("memory://")
    for text, values in sc.series.items():
        name, labels = _parse_series(text)
        idx = [i for i, v in enumerate(values) if v is not None]
        ts = np.array([i * 60 * NS for i in idx], dtype=np.int64)
        vs = np.array([values[i] for i in idx], dtype=np.float64)
        store.write([Series(SeriesKey.of(name, labels), ts, vs)])
    engine = RuleEngine.from_yaml(str(rule_file), store, notifier=None)
    out: Timeline = []
    for i in range(EVALS):
        t = i * 60
        engine.evaluate(now=t)
        firing, pending = [], []
        for a in engine.active_alerts():
            alertname = a.rule.rpartition(".")[2]
            annotations = {
                k: v
                for k, v in (("summary", a.summary), ("description", a.description))
                if k in _annotations(sc, alertname)
            }
            entry = (alertname, dict(a.tags), annotations)
            (firing if a.state is AlertState.FIRING else pending).append(entry)
        out.append((t, firing, pending))
    return out


def _annotations(sc: Scenario, alertname: str) -> dict[str, str]:
    return next(r.get("annotations", {}) for r in sc.rules if r.get("alert") == alertname)


def _test_file(sc: Scenario, timeline: Timeline, tmp: Path) -> Path:
    alert_tests, promql_tests = [], []
    alertnames = [r["alert"] for r in sc.rules if "alert" in r]
    for t, firing, pending in timeline:
        for alertname in alertnames:
            alert_tests.append(
                {
                    "eval_time": f"{t}s",
                    "alertname": alertname,
                    "exp_alerts": [
                        {"exp_labels": labels, "exp_annotations": annotations}
                        for name, labels, annotations in firing
                        if name == alertname
                    ],
                }
            )
        promql_tests.append(
            {
                "expr": 'ALERTS{alertstate="pending"}',
                "eval_time": f"{t}s",
                "exp_samples": [
                    {
                        "labels": "ALERTS{"
                        + ",".join(
                            f'{k}="{v}"'
                            for k, v in sorted(
                                {**labels, "alertname": name, "alertstate": "pending"}.items()
                            )
                        )
                        + "}",
                        "value": 1,
                    }
                    for name, labels, _ in pending
                ],
            }
        )
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": s, "values": promtool_values(v)} for s, v in sc.series.items()
                ],
                "alert_rule_test": alert_tests,
                "promql_expr_test": promql_tests,
            }
        ],
    }
    path = tmp / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


def _promtool(test_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), "test", "rules", test_file.name],
        cwd=test_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _timeline(sc: Scenario, tmp: Path) -> Timeline:
    rule_file = tmp / "rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": sc.name, "rules": sc.rules}]}))
    return _run_metricskit(sc, rule_file)


@pytest.mark.services
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_promtool_agrees_on_expression_rules(sc: Scenario, tmp_path: Path) -> None:
    timeline = _timeline(sc, tmp_path)
    # each scenario fires, is pending, and resolves, or agreeing would prove little
    assert any(f for _, f, _ in timeline), f"never fires: {timeline}"
    assert any(p for _, _, p in timeline), f"never pending: {timeline}"
    assert any(f for _, f, _ in timeline[:-1]) and not all(f for _, f, _ in timeline)
    result = _promtool(_test_file(sc, timeline, tmp_path))
    assert result.returncode == 0, (
        f"promtool disagrees with metricskit's timeline {timeline}:\n"
        f"{result.stdout}\n{result.stderr}"
    )


@pytest.mark.services
def test_a_shifted_timeline_is_caught(tmp_path: Path) -> None:
    """The check has teeth: metricskit's timeline one evaluation late fails promtool."""
    sc = SCENARIOS[0]
    timeline = _timeline(sc, tmp_path)
    shifted = [(t, f, p) for (t, _, _), (_, f, p) in zip(timeline[1:], timeline, strict=False)]
    assert _promtool(_test_file(sc, [timeline[0], *shifted], tmp_path)).returncode != 0


# -- the built-in performance rules ----------------------------------------------------


def _recorded_requests(store: Store, minutes: int) -> None:
    """Requests through a real Recorder: one per (endpoint, status, method) series at most
    each minute (promtool reads one sample a minute), errors in minutes 5-9, slow ones in
    minutes 12-15; before them, fast requests at 0 s keep every bucket counter away from
    zero (where Prometheus 2 clamps its extrapolation in another order than Prometheus 3)."""
    rng = np.random.default_rng(14)
    clock = ManualClock(0)
    recorder = Recorder(store, clock=clock, flush_interval=None)
    shapes = [(e, s, m) for e in ("/a", "/b") for s in (200, 500) for m in ("GET", "POST", "PUT")]
    for endpoint, status, method in shapes:
        for _ in range(200):  # one observation at 0 s for the series, 200 for the counters
            recorder.record_request(endpoint, 0.001, status, method, timestamp=0)
    recorder.flush()
    for minute in range(1, minutes):
        clock.set(minute * 60)
        for endpoint, status, method in shapes:
            failing = 5 <= minute < 10 and endpoint == "/a"
            if rng.random() < (0.25 if status == 200 else 0.7 if failing else 0.02):
                slow = 12 <= minute < 16
                seconds = float(rng.uniform(5.5, 7) if slow else rng.uniform(0.05, 0.8))
                recorder.record_request(endpoint, seconds, status, method)
        recorder.flush()
    recorder.close()


def _promtool_input(store: Store) -> dict[str, list[float | None]]:
    """Every stored series under its PromQL name and labels, one value per minute."""
    out: dict[str, list[float | None]] = {}
    for key in store.backend.keys():
        labels = dict(candidate(key).labels)
        name = labels.pop("__name__")
        s = store.backend.read(key, 0, (EVALS + 4) * 60 * NS)
        assert not (s.timestamps % (60 * NS)).any(), "samples on the minutes only"
        by_minute = dict(zip((s.timestamps // (60 * NS)).tolist(), s.values.tolist(), strict=True))
        text = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        out[text] = [by_minute.get(m) for m in range(EVALS + 4)]
    return out


@pytest.mark.services
def test_promtool_agrees_on_the_built_in_performance_rules(tmp_path: Path) -> None:
    """The seed's thresholds as metricskit builds them (over a 270s window, off the edges)
    on requests a Recorder wrote: the same alerts, labels and summaries as Prometheus."""
    store = open_store("memory://")
    _recorded_requests(store, EVALS + 4)
    series = _promtool_input(store)  # before the engine adds its state series
    rules = default_rules(PerformanceThresholds(), window="270s")
    engine = RuleEngine(rules, store)
    timeline: Timeline = []
    for i in range(4, EVALS + 4):
        engine.evaluate(now=i * 60)
        firing = [
            (a.rule.rpartition(".")[2], dict(a.tags), {"summary": a.summary})
            for a in engine.active_alerts()
        ]
        timeline.append((i * 60, firing, []))
    fired = {name for _, firing, _ in timeline for name, _, _ in firing}
    assert fired == {"high_error_rate", "high_mean_response_time", "high_p95_response_time"}
    assert not timeline[-1][1], "everything resolves by the end"
    prom_rules = [
        {"alert": r.name.rpartition(".")[2], "expr": r.expr, "annotations": r.annotations}
        for r in rules
    ]
    sc = Scenario("performance", prom_rules, series)
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "performance", "rules": prom_rules}]})
    )
    result = _promtool(_test_file(sc, timeline, tmp_path))
    assert result.returncode == 0, (
        f"promtool disagrees with metricskit's timeline {timeline}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
    store.close()
