"""``/api/v1/rules`` and ``/api/v1/alerts`` of Prometheus' HTTP API, from a rule engine.

A rule loaded from a Prometheus ``groups:`` file answers as Prometheus answers for it: its
group's name and file, the group's ``interval`` (else the engine's) and ``limit``, the
rules in file order, its own ``alert:`` name (the ``alertname`` label), its labels as
written (no ``severity`` added), its alerts' annotations templated as Prometheus
templates them, and each rule's ``health``, ``lastError``, ``evaluationTime`` and
``lastEvaluation``. The seed's rules keep their ``group.rule`` name as ``alertname`` with
their ``severity``. Alert values are spelled as Prometheus spells them there (Go's
``%e``: ``"7.5e+00"``) and times are RFC 3339 with nanoseconds, trailing zeros dropped,
as Go writes a time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Protocol

import numpy as np

from metricskit.alerting.rules_model import OPERATOR_SYMBOLS
from metricskit.naming import exposed_name

__all__ = ["AlertSource", "alerts_json", "rules_json"]

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as Prometheus writes "never"


class AlertSource(Protocol):
    """What ``/api/v1/rules`` and ``/api/v1/alerts`` read (a RuleEngine).

    Also read when present: ``expr_recording`` (``record:`` rules),
    ``rule_evaluations()`` (each rule's latest evaluation) and
    ``evaluation_interval_seconds`` (a group's default ``interval``).
    """

    rules: tuple[Any, ...]
    recording: tuple[Any, ...]

    def active_alerts(self) -> list[Any]:
        """Pending and firing alerts."""
        ...


def go_float(v: float) -> str:
    """``strconv.FormatFloat(v, 'e', -1, 64)``: how Prometheus spells an alert's value."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(np.format_float_scientific(v, unique=True, trim="-", exp_digits=2))


def go_time(ns: int | None) -> str:
    """A UTC time as Go's JSON writes it (RFC 3339, nanoseconds without trailing zeros)."""
    if ns is None:
        return _ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}".rstrip("0") + "Z" if frac else f"{stamp}Z"


def _number(v: float) -> float | int:
    # Go's encoding/json writes a whole float64 without ".0"
    return int(v) if float(v).is_integer() else float(v)


def _alert_json(alert: Any) -> dict[str, Any]:
    tags = dict(alert.tags)
    if alert.alertname is not None:  # Prometheus' labels: the alert's, with its alertname
        labels = {**tags, "alertname": alert.alertname}
        annotations = dict(alert.annotations)
    else:
        labels = {"alertname": alert.rule, "severity": alert.severity.value, **tags}
        annotations = {"summary": alert.summary} if alert.summary else {}
    return {
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "state": alert.state.value,
        "activeAt": go_time(alert.since_ns),
        "value": go_float(float(alert.value)),
    }


def _rule_query(rule: Any) -> str:
    if getattr(rule, "expr", None) is not None:
        return str(rule.expr)
    name = exposed_name(rule.metric).sample
    inner = name if rule.stat == "last" else f"{rule.stat}({name})"
    threshold = repr(float(rule.threshold)).removesuffix(".0")
    return f"{inner} {OPERATOR_SYMBOLS[rule.operator]} {threshold}"


def _evaluated(last: Any) -> dict[str, Any]:
    """``health``, ``lastError``, ``evaluationTime``, ``lastEvaluation`` as Prometheus
    spells them for a rule whose latest evaluation is ``last`` (``None``: never)."""
    if last is None:
        return {"health": "unknown", "evaluationTime": 0, "lastEvaluation": _ZERO_TIME}
    out: dict[str, Any] = {"health": "ok" if last.error is None else "err"}
    if last.error is not None:
        out["lastError"] = last.error
    return {**out, "evaluationTime": last.seconds, "lastEvaluation": go_time(last.at_ns)}


def _alerting_rule(rule: Any, alerts: list[dict[str, Any]], last: Any) -> dict[str, Any]:
    states = {a["state"] for a in alerts}
    alertname = rule.prometheus_alert
    prometheus = alertname is not None
    labels = dict(rule.labels) if prometheus else {"severity": rule.severity.value, **rule.tags}
    annotations = dict(rule.annotations)
    if not prometheus:
        labels.update(rule.labels)
        annotations = annotations or ({"summary": rule.summary} if rule.summary else {})
    return {
        "state": "firing" if "firing" in states else "pending" if states else "inactive",
        "name": alertname or rule.name,
        "query": _rule_query(rule),
        "duration": _number(rule.duration_seconds),
        "keepFiringFor": _number(rule.keep_firing_seconds),
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "alerts": alerts,
        **_evaluated(last),
        "type": "alerting",
    }


def _recording_rule(name: str, query: str, labels: dict[str, str], last: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "query": query}
    if labels:  # Prometheus leaves out empty labels here (and only here)
        rule["labels"] = dict(sorted(labels.items()))
    return {**rule, **_evaluated(last), "type": "recording"}


class _Group:
    """One group of the answer: its rules with the place each was written at."""

    def __init__(self, name: str, source: Any, interval: float | None) -> None:
        self.name = name
        self.file = source.file if source is not None else ""
        given = source.interval if source is not None else None
        self.interval = given if given is not None else interval or 0
        self.limit = source.limit if source is not None else 0
        self.rules: list[tuple[int, dict[str, Any]]] = []
        self.evaluations: list[Any] = []

    def add(self, source: Any, rule: dict[str, Any], last: Any) -> None:
        # a groups file's rules in file order (alerts and records interleaved, as
        # Prometheus keeps them); the seed's in the order they were given
        self.rules.append((source.rule_index if source is not None else len(self.rules), rule))
        if last is not None:
            self.evaluations.append(last)

    def json(self) -> dict[str, Any]:
        latest = max((e.at_ns for e in self.evaluations), default=None)
        return {
            "name": self.name,
            "file": self.file,
            "rules": [r for _, r in sorted(self.rules, key=lambda x: x[0])],
            "interval": _number(self.interval),
            "limit": self.limit,
            # metricskit runs every rule in one pass: a group's time is its rules'
            "evaluationTime": sum(e.seconds for e in self.evaluations),
            "lastEvaluation": go_time(latest),
        }


def rules_json(source: AlertSource | None, params: dict[str, list[str]]) -> str:
    """The alert rules (with their alerts) and recording rules by group, groups sorted by
    file and name as Prometheus sorts them; ``type=alert`` or ``type=record`` keeps one
    kind (a group without rules of that kind stays, empty, as in Prometheus 2.42)."""
    if source is None:
        return _ok({"groups": []})
    kind = (params.get("type") or [""])[0].lower()
    evaluations: dict[str, Any] = getattr(source, "rule_evaluations", dict)()
    interval = getattr(source, "evaluation_interval_seconds", None)
    alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in source.active_alerts():
        alerts.setdefault(alert.rule, []).append(_alert_json(alert))
    groups: dict[tuple[str, str], _Group] = {}

    def group_of(name: str, rule_source: Any) -> _Group:
        key = (rule_source.file if rule_source is not None else "", name)
        if key not in groups:
            groups[key] = _Group(name, rule_source, interval)
        return groups[key]

    for rule in source.rules:
        group = group_of(rule.group or rule.name, rule.source)
        if kind in ("", "alert"):
            last = evaluations.get(rule.name)
            group.add(rule.source, _alerting_rule(rule, alerts.get(rule.name, []), last), last)
    for rec in source.recording:
        group = group_of(rec.name.partition(".")[0] or rec.name, None)
        if kind in ("", "record"):
            query = f"{rec.function}({exposed_name(rec.source).sample}[{rec.window}])"
            last = evaluations.get(rec.name)
            target = exposed_name(rec.target).sample
            group.add(None, _recording_rule(target, query, dict(rec.tags), last), last)
    for expr_rec in getattr(source, "expr_recording", ()):
        group = group_of(expr_rec.group, expr_rec.source)
        if kind in ("", "record"):
            last = evaluations.get(expr_rec.name)
            mine = _recording_rule(expr_rec.record, expr_rec.expr, dict(expr_rec.labels), last)
            group.add(expr_rec.source, mine, last)
    return _ok({"groups": [g.json() for _, g in sorted(groups.items())]})


def alerts_json(source: AlertSource | None, params: dict[str, list[str]]) -> str:
    """Every pending and firing alert."""
    if source is None:
        return _ok({"alerts": []})
    return _ok({"alerts": [_alert_json(a) for a in source.active_alerts()]})


def _ok(data: object) -> str:
    return json.dumps({"status": "success", "data": data}, separators=(",", ":"))
