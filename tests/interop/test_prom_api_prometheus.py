"""Differential test of the HTTP API: `metricskit serve` against a real Prometheus (2.42).

The random data and expressions of ``test_promql_engine_prometheus`` (same seed variable,
printed) are backfilled into Prometheus and written to a SQLite store that a real
``python -m metricskit serve`` process serves. Each expression is sent as the same
``GET /api/v1/query_range`` (every third also as ``/api/v1/query``) to both; the JSON must
agree: status and errorType, resultType, the label sets, the timestamps exactly, the
values to 1e-9 relative, and a value's spelling exactly wherever the two numbers are equal
(the sign of a zero included). Series order is not compared (the engine test checks
sort()'s order). ``series``, ``labels`` and ``label/<name>/values`` must answer exactly
the same JSON. A random Prometheus rule file loaded by both gives the same
``/api/v1/alerts`` and ``/api/v1/rules``, apart from evaluation times.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.interop.prom import (
    backfilled_prometheus,
    differential_seed,
    openmetrics_text,
    store_of,
)
from tests.interop.test_promql_engine_prometheus import END, START, STEP, Grammar, draw_data
from tests.test_prom_api import _serve

pytestmark = pytest.mark.services

N_EXPRESSIONS = 80
METADATA_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("labels", {}),
    ("label/job/values", {}),
    ("label/__name__/values", {}),
    ("label/le/values", {}),
    ("series", {"match[]": ["dg", 'dh_bucket{le=~"0.*"}']}),
    ("series", {"match[]": '{job="a", __name__=~"d.*"}'}),
    ("labels", {"match[]": "dh_bucket"}),
    ("label/inst/values", {"match[]": '{__name__="dc_total", job!="b"}'}),
]
REL = 1e-9


def _same_value(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return a == b
    if x == y:
        return a == b  # equal numbers are spelled alike, the sign of a zero included
    return math.isclose(x, y, rel_tol=REL, abs_tol=1e-12)


def _points(result: dict[str, Any]) -> list[list[Any]]:
    return result["values"] if "values" in result else [result["value"]]


def _compare(what: str, ours: requests.Response, theirs: requests.Response) -> list[str]:
    a, b = ours.json(), theirs.json()
    if theirs.status_code != 200 or ours.status_code != 200:
        same = (ours.status_code, a.get("errorType")) == (theirs.status_code, b.get("errorType"))
        return [] if same else [f"{what}: ours {ours.text[:200]} vs {theirs.text[:200]}"]
    da, db = a["data"], b["data"]
    if not isinstance(db, dict):  # series, labels, label values: lists, in Prometheus' order
        return [] if da == db else [f"{what}: {str(da)[:200]} vs {str(db)[:200]}"]
    if da["resultType"] != db["resultType"]:
        return [f"{what}: resultType {da['resultType']} vs {db['resultType']}"]
    if db["resultType"] == "scalar":
        mine, want = {(): [da["result"]]}, {(): [db["result"]]}
    else:
        mine = {tuple(sorted(r["metric"].items())): _points(r) for r in da["result"]}
        want = {tuple(sorted(r["metric"].items())): _points(r) for r in db["result"]}
    if set(mine) != set(want) or len(mine) != len(da["result"]):
        return [f"{what}: series {sorted(mine)[:3]} vs {sorted(want)[:3]}"]
    problems = []
    for key, points in want.items():
        got = mine[key]
        if [t for t, _ in got] != [t for t, _ in points]:
            problems.append(f"{what} {dict(key)}: timestamps differ")
            continue
        pairs = zip(got, points, strict=True)
        bad = [(t, x, y) for (t, x), (_, y) in pairs if not _same_value(x, y)]
        if bad:
            problems.append(f"{what} {dict(key)}: values differ (t, ours, Prometheus) {bad[:3]}")
    return problems


def test_http_api_answers_as_prometheus_does(tmp_path: Path) -> None:
    seed = differential_seed()
    data = draw_data(np.random.default_rng(seed))
    grammar = Grammar(random.Random(seed))
    expressions = [grammar.expression() for _ in range(N_EXPRESSIONS)]
    served = tmp_path / "served"
    served.mkdir()
    store_of(data, f"sqlite:///{served / 'metrics.db'}").close()
    proc, ours = _serve(served, "storage: {type: sqlite, connection_string: metrics.db}\n")
    problems: list[str] = []
    try:
        with backfilled_prometheus(tmp_path, openmetrics_text(data)) as theirs:
            for i, expr in enumerate(expressions):
                params: dict[str, Any] = {"query": expr, "start": START, "end": END, "step": STEP}
                requests_ = [("query_range", params)]
                if i % 3 == 0:
                    at = START + STEP * random.Random(seed + i).randrange(100)
                    requests_.append(("query", {"query": expr, "time": at}))
                if i < len(METADATA_REQUESTS):
                    requests_.append(METADATA_REQUESTS[i])
                for path, p in requests_:
                    a = requests.get(f"{ours}/api/v1/{path}", params=p, timeout=60)
                    b = requests.get(f"{theirs}/api/v1/{path}", params=p, timeout=60)
                    problems += _compare(f"{path} {expr}", a, b)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:20])


ALERT_EXPRS = [
    "queue_depth > {thr}",
    'queue_depth{{queue="q1"}} > {thr}',
    "queue_depth * 2 > {thr}",  # the name dropped: $labels.__name__ is empty
    "sum(queue_depth) > {thr}",
    "max by (queue) (queue_depth) >= {thr}",
    "absent(nothing_here)",
]
RECORD_EXPRS = ["sum(queue_depth)", "max by (queue) (queue_depth)", "count(queue_depth)"]
# $labels is the result sample's labels: __name__ when the expression keeps it, never the
# rule's own labels (severity, team); a missing label and $externalLabels are empty
LABEL_TEMPLATES = [
    "{{ $labels.queue }}-ops",
    "{{ $labels.__name__ }}",
    "{{ $labels.nope }}",
    "{{ $value }}",
    "{{ .Labels.queue }}",
    "{{ $externalLabels.env }}",
    "fixed",
]
ANNOTATION_TEMPLATES = [
    "queue {{ $labels.queue }} is deep: {{ $value }}",
    "{{ $labels.__name__ }}",
    "sev={{ $labels.severity }} team={{ $labels.team }}",
    "missing=[{{ $labels.nope }}]",
    "{{ $value | humanize }} / {{ humanizePercentage $value }}",
    "{{ .Value }} of {{ .Labels.__name__ }}",
    "ext=[{{ $externalLabels.env }}]",
    "https://runbooks.example/{{ $labels.queue }}",
]


def _yaml_map(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in items.items()) + "}"


def random_rule_file(rng: random.Random) -> str:
    """A Prometheus 2.42 rule file: groups of alert and recording rules interleaved, some
    with their own ``interval``/``limit``, templated labels and annotations; sometimes a
    rule whose templated labels collide (an error of that rule in both)."""
    lines = ["groups:"]
    for g in range(rng.randint(2, 4)):
        lines.append(f"  - name: {rng.choice(['queue', 'mixed', 'absent.rules'])}-{g}")
        if rng.random() < 0.5:
            lines.append(f"    interval: {rng.choice(['1s', '2s', '3s'])}")
        if rng.random() < 0.3:
            lines.append(f"    limit: {rng.choice([0, 1, 2, 50])}")
        lines.append("    rules:")
        for r in range(rng.randint(1, 4)):
            if rng.random() < 0.3:
                lines += [
                    f"      - record: queue:rec{g}_{r}",
                    f"        expr: {rng.choice(RECORD_EXPRS)}",
                ]
                if rng.random() < 0.5:
                    lines.append("        labels: {source: mk}")
                continue
            expr = rng.choice(ALERT_EXPRS).format(thr=rng.choice([0, 2, 5, 7.5]))
            labels = {}
            if rng.random() < 0.5:
                labels["severity"] = rng.choice(["critical", "warning", "page"])
            for name in rng.sample(["team", "origin", "val"], rng.randint(0, 2)):
                labels[name] = rng.choice(LABEL_TEMPLATES)
            if rng.random() < 0.1:
                labels["queue"] = "same"  # two result series, one label set: an error
            notes = {
                name: rng.choice(ANNOTATION_TEMPLATES)
                for name in rng.sample(["summary", "description", "runbook"], rng.randint(0, 3))
            }
            lines += [f"      - alert: Alert{g}x{r}", f"        expr: {expr}"]
            if rng.random() < 0.5:
                lines.append(f"        for: {rng.choice(['0s', '10m'])}")
            if labels:
                lines.append(f"        labels: {_yaml_map(labels)}")
            if notes:
                lines.append(f"        annotations: {_yaml_map(notes)}")
    return "\n".join([*lines, ""])


# what the two cannot agree on: when and how long each evaluated (checked for form only)
_TIMED = {"evaluationTime", "lastEvaluation"}
_GO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")


def _alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts without ``activeAt`` (the two evaluate at their own times), checking it
    is spelled as Go writes a time; sorted, as Prometheus' order is its hash's."""
    for a in alerts:
        assert _GO_TIME.fullmatch(a["activeAt"]), a["activeAt"]
    out = [{k: v for k, v in a.items() if k != "activeAt"} for a in alerts]
    return sorted(out, key=lambda a: sorted(a["labels"].items()))


def _untimed(item: dict[str, Any]) -> dict[str, Any]:
    assert _GO_TIME.fullmatch(item["lastEvaluation"]), item
    assert item["lastEvaluation"] != "0001-01-01T00:00:00Z", item  # evaluated
    assert isinstance(item["evaluationTime"], (int, float)) and item["evaluationTime"] >= 0
    # the keys in Prometheus' order: the JSON reads the same
    return {k: v for k, v in item.items() if k not in _TIMED}


def _groups(body: dict[str, Any]) -> list[dict[str, Any]]:
    groups = []
    for group in body["data"]["groups"]:
        rules = []
        for rule in group["rules"]:
            if "alerts" in rule:
                rule = {**rule, "alerts": _alerts(rule["alerts"])}
            rules.append(list(_untimed(rule).items()))
        groups.append([(k, rules if k == "rules" else v) for k, v in _untimed(group).items()])
    return groups


def _evaluated(body: dict[str, Any]) -> bool:
    return all(
        r["lastEvaluation"] != "0001-01-01T00:00:00Z"
        for g in body["data"]["groups"]
        for r in g["rules"]
    )


def test_rules_and_alerts_from_a_prometheus_rule_file_answer_as_prometheus_does(
    tmp_path: Path,
) -> None:
    """A random ``groups:`` file loaded by Prometheus (evaluating backfilled samples that
    end now) and by a metricskit engine (evaluating the same samples, every second): the
    same alert names (the rule's own ``alert:``), labels and annotations (templated with
    the result sample), states and values, and the same rule groups: file, interval,
    limit, rules in file order, health and lastError; evaluation times in Go's form."""
    from metricskit.alerting.engine import RuleEngine
    from metricskit.server.app import MetricsServer

    seed = differential_seed()
    rng = random.Random(seed)
    rule_file = random_rule_file(rng)
    print(rule_file)
    now_ms = int(time.time()) * 1000
    times = range(now_ms - 1_800_000, now_ms, 15_000)
    data = [
        ("queue_depth", {"queue": f"q{i}"}, [(t, v) for t in times])
        for i, v in enumerate(rng.sample([0.5, 2.0, 3.0, 7.5, 9.0, 12.0], rng.randint(2, 4)))
    ]
    store = store_of(data)
    path = tmp_path / "rules.yml"  # where backfilled_prometheus writes it for Prometheus
    path.write_text(rule_file)
    engine = RuleEngine.from_yaml(str(path), store)
    n_rules = len(engine.rules) + len(engine.expr_recording)
    engine.start("1s")
    try:
        deadline = time.monotonic() + 60
        while len(engine.rule_evaluations()) < n_rules:
            assert time.monotonic() < deadline, "the engine did not evaluate every rule"
            time.sleep(0.05)
    finally:
        engine.stop()
    with MetricsServer(store, port=0, alerts=engine) as server:
        ours_alerts = requests.get(f"{server.url}/api/v1/alerts", timeout=30).json()
        ours_rules = requests.get(f"{server.url}/api/v1/rules", timeout=30).json()
    with backfilled_prometheus(tmp_path, openmetrics_text(data), rules=rule_file) as theirs:
        deadline = time.monotonic() + 60
        while not _evaluated(their_rules := requests.get(f"{theirs}/api/v1/rules").json()):
            assert time.monotonic() < deadline, their_rules
            time.sleep(0.2)
        their_alerts = requests.get(f"{theirs}/api/v1/alerts", timeout=30).json()
    assert _alerts(ours_alerts["data"]["alerts"]) == _alerts(their_alerts["data"]["alerts"])
    assert _groups(ours_rules) == _groups(their_rules)
    assert ours_rules["data"]["groups"][0]["file"] == str(path)
