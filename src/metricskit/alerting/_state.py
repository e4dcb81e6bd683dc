"""The rules engine's per-series alert records, their persistence and their events.

Persistence works on every backend because it is only series: an alert's fields are
written to ``metricskit.alerts.state`` tagged ``rule``, ``fingerprint``, ``labels`` (the
alerting series' tags as compact JSON) and ``field``:

=============  ===========================================================
field          value at the write's time ``t``
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
nothing a clock comparison could notice.

Only the fields that changed since the alert's last write are written: a new pending
alert writes ``state``, ``since_age`` and ``value`` (3 samples, not 7; a burst of 7,000
new alerts is dominated by per-series setup in the store). Restoring reads the newest
sample of each field and ignores a field's sample older than the alert's pending start:
it belongs to an earlier pending/firing episode of the same (rule, series), and the
field's value in this one is "none" (NaN).

Retention deletes samples by age (``Store.delete(before=...)``, ``metricskit cleanup``),
so the state of an alert that stays pending or firing without changes would age out.
The engine rewrites every set field of each active alert before it is
:data:`STATE_REFRESH_NS` (1 hour) old, at a point spread by the fingerprint so a burst of
alerts does not refresh in one evaluation: a retention longer than that never deletes
an active alert's state.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metricskit._time import NS_PER_S, TimeLike
from metricskit.alerting._templates import expand
from metricskit.alerting.events import AlertEvent, AlertState, fingerprint_of
from metricskit.alerting.rules_model import OPERATOR_SYMBOLS, AlertRule
from metricskit.model import Series, SeriesKey, Tags, validate_tags
from metricskit.store import Store

__all__ = [
    "STATE_METRIC",
    "STATE_REFRESH_NS",
    "ActiveAlert",
    "Alert",
    "annotations_of",
    "event_of",
    "persist_alerts",
    "read_history",
    "render",
    "restore_alerts",
]

logger = logging.getLogger("metricskit.alerting.engine")

STATE_METRIC = "metricskit.alerts.state"
"""The series alert state is persisted in."""
_CODES = {AlertState.INACTIVE: 0.0, AlertState.PENDING: 1.0, AlertState.FIRING: 2.0}
_STATES = {0: AlertState.INACTIVE, 1: AlertState.PENDING, 2: AlertState.FIRING}
_FIELDS = ("state", "since_age", "fired_age", "notified_age", "keep_age", "value", "firing")
STATE_REFRESH_NS = 3_600 * NS_PER_S
"""An active alert's whole state is rewritten at least this often (see the module doc)."""

# (state code, since, fired_at, notified_at, keep_since, value, firing value): times are
# absolute ns, None or NaN when unset
_Record = tuple[float, int, int | None, int | None, int | None, float, float]


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
    annotations: dict[str, str] | None = None
    """An expression rule's annotations, templated as Prometheus does at each evaluation
    that returned this series (with its sample's labels and value); ``None`` until then."""
    state_tags: tuple[tuple[str, str], ...] | None = field(default=None, repr=False, compare=False)
    """The validated rule/fingerprint/labels tags of the state series (built once)."""
    state_keys: dict[int, SeriesKey] = field(default_factory=dict, repr=False, compare=False)
    """The state series' keys by field index, each built when first written."""
    persisted: _Record | None = field(default=None, repr=False, compare=False)
    """What the store holds for this episode (None: nothing written yet)."""
    persisted_at: int | None = field(default=None, repr=False, compare=False)
    """When every field was last written (the refresh clock)."""

    def record(self) -> _Record:
        """The fields as persisted, times absolute."""
        return (
            _CODES[self.state],
            self.since_ns,
            self.fired_at_ns,
            self.notified_at_ns,
            self.keep_since_ns,
            self.value,
            math.nan if self.firing_value is None else self.firing_value,
        )

    def holds(self, rule: AlertRule, t: int) -> bool:
        """True if this alert, its condition true again by ``rule.threshold``, stays as is.

        That is: not held by ``keep_firing``; pending and not yet due to fire, or firing
        (judged by the threshold itself, no recovery threshold), notified and no repeat
        due. The engine then only updates its value, without running the state machine.
        """
        if self.keep_since_ns is not None:
            return False
        if self.state is AlertState.PENDING:
            return t - self.since_ns < rule.for_ns
        if self.state is not AlertState.FIRING or rule.recovery_threshold is not None:
            return False
        notified, repeat = self.notified_at_ns, rule.repeat_ns
        return notified is not None and (repeat is None or t - notified < repeat)

    def refresh_due(self, t: int) -> bool:
        """True when the whole state should be rewritten so retention cannot age it out."""
        if self.persisted_at is None:
            return False
        # between 3/8 and 7/8 of the period, spread by the (hex) fingerprint; the engine
        # looks every 1/8, so no state gets older than the whole period
        period = 3 * STATE_REFRESH_NS // 8 + int(self.fingerprint[:8], 16) % (STATE_REFRESH_NS // 2)
        return t - self.persisted_at >= period


ActiveAlert = AlertEvent
"""A pending or firing alert as of the last evaluation: the same type the channels get,
with ``silenced`` set and ``at_ns`` the time of the query."""


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


def annotations_of(rule: AlertRule, a: Alert) -> dict[str, str]:
    """``rule``'s annotations for ``a``: as the last evaluation that returned its series
    templated them; else (a metric rule, or an alert restored and not evaluated since)
    templated with the alert's labels and its latest value."""
    if a.annotations is not None:
        return a.annotations
    return {k: expand(text, a.key.tags, a.value) for k, text in rule.annotations.items()}


def event_of(
    rule: AlertRule, a: Alert, state: AlertState, t: int, *, silenced: bool = False
) -> AlertEvent:
    """The event announcing that ``a`` (of ``rule``) is in ``state`` at ``t``."""
    notes = annotations_of(rule, a) if rule.annotations else {}
    return AlertEvent(
        rule=rule.name,
        metric=rule.metric,
        tags=a.key.tags,
        state=state,
        severity=rule.severity,
        value=a.value,
        threshold=rule.threshold,
        operator=rule.operator,
        at_ns=t,
        active_since_ns=a.since_ns,
        fired_at_ns=a.fired_at_ns,
        firing_value=a.firing_value,
        summary=notes.get("summary") or render(rule.summary, rule, a, state),
        description=notes.get("description")
        or (render(rule.description, rule, a, state) if rule.description else ""),
        channels=rule.channels,
        fingerprint=a.fingerprint,
        silenced=silenced,
        alertname=rule.prometheus_alert,
        annotations=tuple(sorted(notes.items())),
    )


def persist_alerts(
    store: Store,
    changed: Sequence[tuple[str, Alert]],
    t: int,
    refresh: Sequence[tuple[str, Alert]] = (),
) -> None:
    """Write what changed in each ``(rule name, alert)`` at ``t``, durably.

    ``refresh`` alerts have every set field rewritten (see the module docstring).
    """
    if not changed and not refresh:
        return
    latest = {(name, a.fingerprint): (name, a, False) for name, a in changed}
    for name, a in refresh:
        latest[(name, a.fingerprint)] = (name, a, True)
    keys: list[SeriesKey] = []
    values: list[float] = []
    for name, a, whole in latest.values():
        now = a.record()
        before = None if whole else a.persisted
        for i, (v, encoded) in enumerate(zip(now, _encode(now, t), strict=True)):
            if before is None:
                # a new episode or a refresh: unset fields need no sample (the restore
                # rule reads an earlier episode's as unset)
                if i and math.isnan(encoded):
                    continue
            elif _same(before[i], v):
                continue
            keys.append(_state_key(name, a, i))
            values.append(encoded)
        a.persisted = now
        if before is None:
            a.persisted_at = t
    if not keys:
        return
    ts = np.array([t], dtype=np.int64)
    column = np.array(values, dtype=np.float64)
    batch = [Series(key, ts, column[i : i + 1]) for i, key in enumerate(keys)]
    try:
        store.write(batch)
        store.flush()
    except Exception as exc:  # alerting goes on; only a restart would lose this state
        logger.error("rules: could not persist alert state: %s", exc)


def _encode(record: _Record, t: int) -> tuple[float, ...]:
    """The stored floats: times become ages (seconds) relative to ``t``, unset is NaN."""
    code, since, fired, notified, keep, value, firing = record
    ages = tuple(
        math.nan if at is None else (t - at) / NS_PER_S for at in (since, fired, notified, keep)
    )
    return (code, *ages, value, firing)


def _same(a: float | int | None, b: float | int | None) -> bool:
    return a == b or (a is not None and b is not None and a != a and b != b)


_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@functools.lru_cache(maxsize=4096)
def _rule_tag(rule: str) -> tuple[tuple[str, str], ...]:
    """The validated ``rule`` tag (validated once per rule, not once per alert)."""
    return Tags({"rule": rule}).items_tuple


def _state_key(rule: str, a: Alert, field_index: int) -> SeriesKey:
    """The key of ``a``'s state series for ``_FIELDS[field_index]``.

    The tags are validated once per alert; then only the "field" tag differs, and it
    sorts first ("field" < "fingerprint" < "labels" < "rule"), so each key is built
    without validating or sorting again, and only for the fields written (a new alert
    writes 3 of the 7).
    """
    key = a.state_keys.get(field_index)
    if key is None:
        base = a.state_tags
        if base is None:
            # the series' tags are sorted by key already: the JSON needs no sort_keys
            labels = validate_tags({"labels": _compact_json(dict(a.key.tags.items_tuple))})
            base = (("fingerprint", a.fingerprint), *labels.items_tuple, *_rule_tag(rule))
            a.state_tags = base
        items = (("field", _FIELDS[field_index]), *base)
        key = a.state_keys[field_index] = SeriesKey(STATE_METRIC, Tags._trusted(items))
    return key


def restore_alerts(store: Store, rules: Mapping[str, AlertRule]) -> list[tuple[str, Alert]]:
    """The pending/firing alerts persisted for ``rules`` (by name), with their clocks.

    A store that cannot be read raises (the caller must not evaluate without its state:
    it would re-send what was sent); a record that cannot be understood (written by hand,
    or by a broken version) is skipped with a warning, not allowed to hide the others.
    """
    # (rule, fingerprint) -> (labels JSON, {field: (ts, value)})
    records: dict[tuple[str, str], tuple[str, dict[str, tuple[int, float]]]] = {}
    for key, ts, value in store.latest(STATE_METRIC):
        tags = key.tags
        owner, fp, labels, name = (tags.get(t) for t in ("rule", "fingerprint", "labels", "field"))
        if owner is None or fp is None or labels is None or name is None:
            logger.warning("rules: ignoring persisted alert state without its tags: %r", key)
            continue
        records.setdefault((owner, fp), (labels, {}))[1][name] = (ts, value)
    out = []
    for (name, _), (labels, fields) in records.items():
        rule = rules.get(name)
        state = _STATES.get(int(fields.get("state", (0, 0.0))[1]))
        if rule is None or state not in (AlertState.PENDING, AlertState.FIRING):
            continue
        try:
            alert = _alert_from(rule, labels, fields, state)
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError and bad tags included
            logger.warning("rules: ignoring unreadable persisted state of %r: %s", name, exc)
            continue
        if alert is not None:
            out.append((name, alert))
    return out


def _alert_from(
    rule: AlertRule, labels: str, rec: Mapping[str, tuple[int, float]], state: AlertState
) -> Alert | None:
    ts_since, since_age = rec.get("since_age", (0, math.nan))
    if math.isnan(since_age):
        return None
    since = int(ts_since) - round(since_age * NS_PER_S)

    def sample(field_name: str) -> tuple[int, float]:
        ts, v = rec.get(field_name, (0, math.nan))
        # written before this episode began: an earlier episode's, so unset in this one
        return (ts, math.nan) if ts < since else (ts, v)

    def at(field_name: str) -> int | None:
        ts, age = sample(field_name)
        return None if math.isnan(age) else int(ts) - round(age * NS_PER_S)

    key = SeriesKey(rule.metric, Tags(json.loads(labels)))
    firing = sample("firing")[1]
    alert = Alert(
        key=key,
        fingerprint=fingerprint_of(rule.name, key.tags),
        state=state,
        since_ns=since,
        value=float(sample("value")[1]),
        fired_at_ns=at("fired_age"),
        firing_value=None if math.isnan(firing) else float(firing),
        notified_at_ns=at("notified_age"),
        keep_since_ns=at("keep_age"),
    )
    alert.persisted = alert.record()
    # the oldest sample of this episode sets the refresh clock: it is the first to age out
    alert.persisted_at = min(int(ts) for ts, _ in rec.values() if ts >= since)
    return alert


def read_history(
    store: Store, rule: str | None, start: TimeLike | None, end: TimeLike | None
) -> list[dict[str, Any]]:
    """Persisted state changes, oldest first: ``{rule, tags, state, at_ns}``."""
    tags = {"field": "state", **({"rule": rule} if rule else {})}
    out = []
    for s in store.query(STATE_METRIC, start, end, tags=tags):
        try:
            labels = json.loads(s.tags["labels"])
        except (KeyError, ValueError) as exc:  # as restore_alerts: skip, do not fail
            logger.warning("rules: ignoring unreadable alert history %r: %s", s.key, exc)
            continue
        previous = None
        for ts, code in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
            if code == previous:
                continue  # a refresh of unchanged state, not a change
            previous = code
            state = _STATES.get(int(code), AlertState.INACTIVE)
            out.append({"rule": s.tags["rule"], "tags": labels, "state": state.value, "at_ns": ts})
    out.sort(key=lambda r: (r["at_ns"], r["rule"]))
    return out
