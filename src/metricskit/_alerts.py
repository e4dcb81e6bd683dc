"""The rules engine's per-series alert records, their persistence, silences and templates.

Persistence works on every backend because it is only series: each change of an alert
writes one sample per field to ``metricskit.alerts.state`` tagged ``rule``,
``fingerprint``, ``labels`` (the alerting series' tags as compact JSON) and ``field``:

=============  ===========================================================
field          value at the change's time ``t``
=============  ===========================================================
state          0 inactive/resolved, 1 pending, 2 firing
since_age      seconds from the pending start (the ``for`` clock) to ``t``
fired_age      seconds since it started firing (NaN: not firing)
notified_age   seconds since the last firing notification (NaN: none sent)
keep_age       seconds since ``keep_firing`` began holding it (NaN: not)
value          the value at ``t``
firing         the value when it started firing (NaN: not firing)
=============  ===========================================================

Times are stored as ages relative to the sample's own int64 timestamp, so float64 loses
nothing a clock comparison could notice. Reading back the newest sample of each series
restores every pending/firing alert with its clocks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metricskit._time import NS_PER_S, TimeLike
from metricskit.events import AlertState, Severity, fingerprint_of
from metricskit.model import Series, SeriesKey, Tags
from metricskit.rules_model import OPERATOR_SYMBOLS, AlertRule
from metricskit.store import Store

__all__ = [
    "STATE_METRIC",
    "ActiveAlert",
    "Alert",
    "Silence",
    "persist_alerts",
    "read_history",
    "render",
    "restore_alerts",
]

logger = logging.getLogger("metricskit.rules")

STATE_METRIC = "metricskit.alerts.state"
"""The series alert state is persisted in."""
_CODES = {AlertState.INACTIVE: 0.0, AlertState.PENDING: 1.0, AlertState.FIRING: 2.0}
_STATES = {0: AlertState.INACTIVE, 1: AlertState.PENDING, 2: AlertState.FIRING}
_FIELDS = ("state", "since_age", "fired_age", "notified_age", "keep_age", "value", "firing")


@dataclass
class Alert:
    """The mutable state of one (rule, series) pair while it is pending or firing."""

    key: SeriesKey
    fingerprint: str
    state: AlertState
    since_ns: int
    value: float
    fired_at_ns: int | None = None
    firing_value: float | None = None
    notified_at_ns: int | None = None
    keep_since_ns: int | None = None
    missing: int = 0
    state_keys: tuple[SeriesKey, ...] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Silence:
    """Mutes notifications of matching alerts until ``until_ns``; the alerts stay active.

    ``rule`` ``None`` matches every rule; ``tags`` must all be carried by the series.
    """

    id: int
    rule: str | None
    tags: Tags
    until_ns: int
    comment: str = ""

    def matches(self, rule: str, tags: Tags, now_ns: int) -> bool:
        """True while active for an alert of ``rule`` on a series with ``tags``."""
        if now_ns >= self.until_ns or (self.rule is not None and self.rule != rule):
            return False
        return all(tags.get(k) == v for k, v in self.tags.items_tuple)


@dataclass(frozen=True)
class ActiveAlert:
    """A pending or firing alert as of the last evaluation."""

    rule: str
    metric: str
    tags: Tags
    state: AlertState
    severity: Severity
    value: float
    threshold: float
    since_ns: int
    fired_at_ns: int | None
    silenced: bool
    fingerprint: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: enums as strings, times as ns and ``since`` in seconds."""
        return {
            "rule": self.rule,
            "metric": self.metric,
            "tags": dict(self.tags.items_tuple),
            "state": self.state.value,
            "severity": self.severity.value,
            "value": self.value if math.isfinite(self.value) else str(self.value),
            "threshold": self.threshold,
            "since": self.since_ns / NS_PER_S,
            "since_ns": self.since_ns,
            "fired_at_ns": self.fired_at_ns,
            "silenced": self.silenced,
            "fingerprint": self.fingerprint,
            "summary": self.summary,
        }


class _TemplateTags(dict[str, str]):
    # {tags} renders as host=a,region=b; {tags[host]} still indexes.
    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items())

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def render(template: str | None, rule: AlertRule, alert: Alert, state: AlertState) -> str:
    """Fill a summary/description template; no template gives the rule's title."""
    if template is None:
        return rule.name.rpartition(".")[2].replace("_", " ").title()
    fields = {
        "rule": rule.name,
        "group": rule.group,
        "metric": rule.metric,
        "value": f"{alert.value:g}",
        "threshold": f"{rule.threshold:g}",
        "recovery_threshold": rule.recovery_threshold,
        "operator": OPERATOR_SYMBOLS[rule.operator],
        "tags": _TemplateTags(alert.key.tags.items_tuple),
        "severity": rule.severity.value,
        "stat": rule.stat,
        "window": rule.window,
        "duration": rule.duration_seconds,
        "state": state.value,
    }
    try:
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError, AttributeError):
        return template  # e.g. {tags[host]} on a series without that tag


def persist_alerts(store: Store, changed: list[tuple[str, Alert]], t: int) -> None:
    """Write the current state of each changed ``(rule name, alert)`` at ``t``, durably."""
    if not changed:
        return
    latest = {(name, a.fingerprint): (name, a) for name, a in changed}
    batch: list[Series] = []
    ts = np.array([t], dtype=np.int64)

    def age(at: int | None) -> float:
        return math.nan if at is None else (t - at) / NS_PER_S

    for name, a in latest.values():
        if a.state_keys is None:
            a.state_keys = _state_keys(name, a)
        fields = (
            _CODES[a.state],
            age(a.since_ns),
            age(a.fired_at_ns),
            age(a.notified_at_ns),
            age(a.keep_since_ns),
            a.value,
            math.nan if a.firing_value is None else a.firing_value,
        )
        for key, v in zip(a.state_keys, fields, strict=True):
            batch.append(Series(key, ts, np.array([v], dtype=np.float64)))
    try:
        store.write(batch)
        store.flush()
    except Exception as exc:  # alerting goes on; only a restart would lose this state
        logger.error("rules: could not persist alert state: %s", exc)


def _state_keys(rule: str, a: Alert) -> tuple[SeriesKey, ...]:
    # Validated once per alert, then only the "field" tag differs: the keys are built
    # without validating the same three values seven times (a burst of thousands of new
    # alerts spent most of its time there).
    labels = json.dumps(dict(a.key.tags.items_tuple), sort_keys=True, separators=(",", ":"))
    base = Tags({"rule": rule, "fingerprint": a.fingerprint, "labels": labels}).items_tuple
    return tuple(
        SeriesKey(STATE_METRIC, Tags._trusted(tuple(sorted((*base, ("field", f))))))
        for f in _FIELDS
    )


def restore_alerts(store: Store, rules: Mapping[str, AlertRule]) -> list[tuple[str, Alert]]:
    """The pending/firing alerts persisted for ``rules`` (by name), with their clocks."""
    try:
        rows = store.latest(STATE_METRIC)
    except Exception as exc:
        logger.error("rules: could not read persisted alert state: %s", exc)
        return []
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for key, ts, value in rows:
        tags = key.tags
        rec = records.setdefault((tags["rule"], tags["fingerprint"]), {"labels": tags["labels"]})
        rec[tags["field"]] = (ts, value)
    out = []
    for (name, _), rec in records.items():
        rule = rules.get(name)
        state = _STATES.get(int(rec.get("state", (0, 0.0))[1]))
        if rule is None or state not in (AlertState.PENDING, AlertState.FIRING):
            continue
        alert = _alert_from(rule, rec, state)
        if alert is not None:
            out.append((name, alert))
    return out


def _alert_from(rule: AlertRule, rec: dict[str, Any], state: AlertState) -> Alert | None:
    def at(field_name: str) -> int | None:
        ts, age = rec.get(field_name, (0, math.nan))
        return None if math.isnan(age) else int(ts) - round(age * NS_PER_S)

    since = at("since_age")
    if since is None:
        return None
    key = SeriesKey(rule.metric, Tags(json.loads(rec["labels"])))
    firing = rec.get("firing", (0, math.nan))[1]
    return Alert(
        key=key,
        fingerprint=fingerprint_of(rule.name, key.tags),
        state=state,
        since_ns=since,
        value=float(rec.get("value", (0, math.nan))[1]),
        fired_at_ns=at("fired_age"),
        firing_value=None if math.isnan(firing) else float(firing),
        notified_at_ns=at("notified_age"),
        keep_since_ns=at("keep_age"),
    )


def read_history(
    store: Store, rule: str | None, start: TimeLike | None, end: TimeLike | None
) -> list[dict[str, Any]]:
    """Persisted state changes, oldest first: ``{rule, tags, state, at_ns}``."""
    tags = {"field": "state", **({"rule": rule} if rule else {})}
    out = []
    for s in store.query(STATE_METRIC, start, end, tags=tags):
        labels = json.loads(s.tags["labels"])
        for ts, code in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
            state = _STATES.get(int(code), AlertState.INACTIVE)
            out.append({"rule": s.tags["rule"], "tags": labels, "state": state.value, "at_ns": ts})
    out.sort(key=lambda r: (r["at_ns"], r["rule"]))
    return out
