"""``/api/v1/rules`` and ``/api/v1/alerts`` of Prometheus' HTTP API, from a rule engine.

A rule loaded from a Prometheus ``groups:`` file answers as Prometheus answers for it: its
group's name, its own ``alert:`` name (the ``alertname`` label), its labels as written
(no ``severity`` added) and every annotation templated. The seed's rules keep their
``group.rule`` name as ``alertname`` with their ``severity``. Alert values are spelled as
Prometheus spells them there (Go's ``%e``: ``"7.5e+00"``) and ``activeAt`` is RFC 3339
with nanoseconds, trailing zeros dropped, as Go writes a time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Protocol

import numpy as np

from metricskit.alerting._templates import expand
from metricskit.alerting.rules_model import OPERATOR_SYMBOLS
from metricskit.naming import exposed_name

__all__ = ["AlertSource", "alerts_json", "rules_json"]

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as Prometheus writes "never"


class AlertSource(Protocol):
    """What ``/api/v1/rules`` and ``/api/v1/alerts`` read (a RuleEngine)."""

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


def _alert_json(alert: Any, rule: Any) -> dict[str, Any]:
    tags = dict(alert.tags)
    value = float(alert.value)
    if getattr(rule, "prometheus_alert", None) is not None:
        labels = {**tags, "alertname": rule.prometheus_alert}
        annotations = {k: expand(text, tags, value) for k, text in rule.annotations.items()}
    else:
        labels = {"alertname": alert.rule, "severity": alert.severity.value, **tags}
        annotations = {"summary": alert.summary} if alert.summary else {}
    return {
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "state": alert.state.value,
        "activeAt": go_time(alert.since_ns),
        "value": go_float(value),
    }


def _rule_query(rule: Any) -> str:
    if getattr(rule, "expr", None) is not None:
        return str(rule.expr)
    name = exposed_name(rule.metric).sample
    inner = name if rule.stat == "last" else f"{rule.stat}({name})"
    threshold = repr(float(rule.threshold)).removesuffix(".0")
    return f"{inner} {OPERATOR_SYMBOLS[rule.operator]} {threshold}"


def _alerting_rule(rule: Any, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    states = {a["state"] for a in alerts}
    alertname = getattr(rule, "prometheus_alert", None)
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
        "health": "ok",
        "type": "alerting",
    }


def _recording_rule(name: str, query: str, labels: dict[str, str]) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "query": query}
    if labels:  # Prometheus leaves out empty labels here (and only here)
        rule["labels"] = dict(sorted(labels.items()))
    return {**rule, "health": "ok", "type": "recording"}


def rules_json(source: AlertSource | None, params: dict[str, list[str]]) -> str:
    """The alert rules (with their alerts) and recording rules by group, groups sorted by
    name as Prometheus sorts them; ``type=alert`` or ``type=record`` keeps one kind."""
    if source is None:
        return _ok({"groups": []})
    kind = (params.get("type") or [""])[0]
    by_rule = {rule.name: rule for rule in source.rules}
    alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in source.active_alerts():
        alerts.setdefault(alert.rule, []).append(_alert_json(alert, by_rule.get(alert.rule)))
    groups: dict[str, list[dict[str, Any]]] = {}
    if kind in ("", "alert"):
        for rule in source.rules:
            mine = _alerting_rule(rule, alerts.get(rule.name, []))
            groups.setdefault(rule.group or rule.name, []).append(mine)
    if kind in ("", "record"):
        for rec in source.recording:
            query = f"{rec.function}({exposed_name(rec.source).sample}[{rec.window}])"
            groups.setdefault(rec.name.partition(".")[0] or rec.name, []).append(
                _recording_rule(exposed_name(rec.target).sample, query, dict(rec.tags))
            )
        for expr_rec in getattr(source, "expr_recording", ()):
            groups.setdefault(expr_rec.group, []).append(
                _recording_rule(expr_rec.record, expr_rec.expr, dict(expr_rec.labels))
            )
    body = [
        {"name": g, "file": "", "rules": r, "interval": 0, "limit": 0}
        for g, r in sorted(groups.items())
    ]
    return _ok({"groups": body})


def alerts_json(source: AlertSource | None, params: dict[str, list[str]]) -> str:
    """Every pending and firing alert."""
    if source is None:
        return _ok({"alerts": []})
    by_rule = {rule.name: rule for rule in source.rules}
    return _ok({"alerts": [_alert_json(a, by_rule.get(a.rule)) for a in source.active_alerts()]})


def _ok(data: object) -> str:
    return json.dumps({"status": "success", "data": data}, separators=(",", ":"))
