"""The rules engine against Prometheus itself: ``promtool test rules`` (Debian's promtool).

Each scenario is one rule written twice, as a metricskit rule and as a Prometheus
alerting rule with ``for:``, plus input series. metricskit's engine evaluates the series
at every evaluation time; the firing alerts it finds become the test file's
``alert_rule_test`` expectations and its pending alerts ``ALERTS{alertstate="pending"}``
expectations in ``promql_expr_test``. promtool then evaluates the Prometheus rule on the
same series and fails if Prometheus disagrees anywhere.

Range boundaries differ between Prometheus 2 (``[t - w, t]``) and metricskit / Prometheus
3 (``(t - w, t]``), so windows and sample grids are chosen so that no sample sits exactly
on a window's left edge; everything else must agree exactly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from metricskit import Series, SeriesKey, open_store
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.events import AlertState
from metricskit.alerting.rules_model import AlertRule
from tests.interop.prom import promtool_values
from tests.services import binary

METRIC = "app.test.value"
PROM_METRIC = "app_test_value"
NS = 10**9


@dataclass
class Scenario:
    """One rule, its Prometheus twin and the input series (values per ``step_s``)."""

    name: str
    rule: dict[str, Any]
    prom_expr: str
    prom_for: str
    series: dict[str, list[float | None]]  # host -> values, None = no sample
    step_s: int = 60
    evals: int = 16
    prom_extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "for_with_dip",
        {"threshold": 80, "operator": "gt", "duration_seconds": 300},
        f"{PROM_METRIC} > 80",
        "5m",
        {
            "a": [90, 90, 90, 90, 70, 90, 90, 90, 90, 90, 90, 90, 60, 60, 90, 90],
            "b": [85] * 16,
        },
    ),
    Scenario(
        "for_zero_and_flapping",
        {"threshold": 50, "operator": "gte", "duration_seconds": 0},
        f"{PROM_METRIC} >= 50",
        "0s",
        {
            "a": [40, 50, 49, 51, 60, 10, 55, 55, 20, 50, 50, 50, 49, 49, 80, 80],
            "b": [60, 40] * 8,
        },
    ),
    Scenario(
        "flapping_with_for",
        {"threshold": 10, "operator": "lt", "duration_seconds": 120},
        f"{PROM_METRIC} < 10",
        "2m",
        {"a": [5, 20, 5, 5, 20, 5, 5, 5, 5, 20, 5, 5, 5, 20, 20, 5]},
    ),
    Scenario(
        "keep_firing",
        {"threshold": 80, "operator": "gt", "duration_seconds": 60, "keep_firing_seconds": 120},
        f"{PROM_METRIC} > 80",
        "1m",
        {"a": [90, 90, 90, 70, 70, 90, 70, 70, 70, 70, 90, 90, 70, 90, 70, 70]},
        prom_extra={"keep_firing_for": "2m"},
    ),
    Scenario(
        "p95_over_window",
        {
            "threshold": 500,
            "operator": "gt",
            "duration_seconds": 120,
            "stat": "p95",
            "window": "270s",
        },
        f"quantile_over_time(0.95, {PROM_METRIC}[270s]) > 500",
        "2m",
        {
            "a": [100, 200, 600, 100, 100, 100, 700, 650, 100, 100, 100, 100, 100, 900, 100, 100],
            "b": [550, 560, 570, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
        },
    ),
    Scenario(
        "hysteresis",
        # Prometheus' own hysteresis idiom: stay firing while above the recovery threshold
        {"threshold": 1000, "operator": "gt", "recovery_threshold": 900},
        f"{PROM_METRIC} > 1000 or ({PROM_METRIC} > 900 and on(host) "
        'ALERTS{alertname="InteropRule", alertstate="firing"})',
        "0s",
        {
            "a": [
                980,
                1010,
                990,
                1020,
                890,
                950,
                1001,
                901,
                900,
                1500,
                950,
                950,
                899,
                1000,
                1001,
                0,
            ],
        },
    ),
    Scenario(
        "series_gone_stale",
        # no_data ok: a series that stops reporting resolves once its newest sample is
        # older than the 5m lookback, as in Prometheus (samples every 30 s, evals every 1m:
        # the last sample is never exactly 5m old at an evaluation)
        {"threshold": 80, "operator": "gt", "duration_seconds": 60, "no_data": "ok"},
        f"{PROM_METRIC} > 80",
        "1m",
        {"a": [90] * 8 + [None] * 15 + [90] * 9, "b": [90] * 32},
        step_s=30,
        evals=16,
    ),
]


def _run_metricskit(sc: Scenario) -> list[tuple[int, set[str], set[str]]]:
    """Evaluate at 0, 1m, ...; per time the hosts firing and the hosts pending."""
    store = open_store("memory://")
    for host, values in sc.series.items():
        idx = [i for i, v in enumerate(values) if v is not None]
        ts = np.array([i * sc.step_s * NS for i in idx], dtype=np.int64)
        vs = np.array([values[i] for i in idx], dtype=np.float64)
        store.write([Series(SeriesKey.of(METRIC, {"host": host}), ts, vs)])
    rule = AlertRule.create("interop.rule", metric=METRIC, severity="warning", **sc.rule)
    engine = RuleEngine([rule], store)
    out = []
    for i in range(sc.evals):
        t = i * 60
        engine.evaluate(now=t)
        alerts = engine.active_alerts()
        firing = {a.tags["host"] for a in alerts if a.state is AlertState.FIRING}
        pending = {a.tags["host"] for a in alerts if a.state is AlertState.PENDING}
        out.append((t, firing, pending))
    return out


def _prom_files(sc: Scenario, timeline: list[tuple[int, set[str], set[str]]], tmp: Path) -> Path:
    alert: dict[str, Any] = {
        "alert": "InteropRule",
        "expr": sc.prom_expr,
        "for": sc.prom_for,
        "labels": {"severity": "warning"},
        **sc.prom_extra,
    }
    (tmp / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": sc.name, "rules": [alert]}]})
    )
    alert_tests = []
    promql_tests = []
    for t, firing, pending in timeline:
        alert_tests.append(
            {
                "eval_time": f"{t}s",
                "alertname": "InteropRule",
                "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "host": h}} for h in sorted(firing)
                ],
            }
        )
        promql_tests.append(
            {
                "expr": 'ALERTS{alertstate="pending"}',
                "eval_time": f"{t}s",
                "exp_samples": [
                    {
                        "labels": 'ALERTS{alertname="InteropRule",alertstate="pending",'
                        f'host="{h}",severity="warning"}}',
                        "value": 1,
                    }
                    for h in sorted(pending)
                ],
            }
        )
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": f"{sc.step_s}s",
                "input_series": [
                    {"series": f'{PROM_METRIC}{{host="{h}"}}', "values": promtool_values(v)}
                    for h, v in sc.series.items()
                ],
                "alert_rule_test": alert_tests,
                "promql_expr_test": promql_tests,
            }
        ],
    }
    path = tmp / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


@pytest.mark.services
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_promtool_agrees_with_the_engine(sc: Scenario, tmp_path: Path) -> None:
    promtool = binary("promtool")
    timeline = _run_metricskit(sc)
    # every scenario must exercise both states, or agreeing would prove little
    assert any(f for _, f, _ in timeline), "scenario never fires"
    assert any(p for _, _, p in timeline) or sc.prom_for == "0s", "scenario is never pending"
    test_file = _prom_files(sc, timeline, tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"promtool disagrees with metricskit's timeline {timeline}:\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_a_wrong_expectation_is_caught(tmp_path: Path) -> None:
    """The check has teeth: a timeline off by one evaluation makes promtool fail."""
    promtool = binary("promtool")
    sc = SCENARIOS[0]
    timeline = _run_metricskit(sc)
    shifted = [
        (t, firing, pending)
        for (t, _, _), (_, firing, pending) in zip(
            timeline, timeline[1:] + timeline[-1:], strict=True
        )
    ]
    test_file = _prom_files(sc, shifted, tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
