"""One alert rule's evaluation: the state machine of each of its series.

Per rule and series: inactive -> pending (condition true) -> firing (true at every
evaluation for ``duration_seconds``) -> resolved, as a Prometheus alerting rule with
``for:``. :class:`RuleState` holds a rule's active alerts and steps them at each
evaluation; what changed goes to the evaluation's :class:`Outcome` (events, the
notifications to send and the alerts whose stored state must be written).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metricskit.alerting._data import MetricData
from metricskit.alerting._expr import instant_samples
from metricskit.alerting._rule_fields import OPERATORS
from metricskit.alerting._silences import Silences
from metricskit.alerting._state import Alert, event_of
from metricskit.alerting._templates import expand
from metricskit.alerting.events import AlertEvent, AlertState, fingerprint_of
from metricskit.alerting.rules_model import AlertRule
from metricskit.errors import QueryError
from metricskit.model import SeriesKey, Tags
from metricskit.query._values import NAME
from metricskit.store import Store

__all__ = ["Evaluation", "Outcome", "RuleState", "result_tags"]

logger = logging.getLogger("metricskit.alerting.engine")


def result_tags(labels: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> Tags:
    """The tags of an expression's result series with a rule's ``extra`` labels.

    Prometheus drops the metric name and lets rule labels win; an empty one removes it.
    """
    tags = {k: v for k, v in labels if k != NAME}
    tags.update(extra)
    return Tags({k: v for k, v in tags.items() if v != ""})


@dataclass
class Outcome:
    """What one evaluation at ``t`` produced."""

    t: int
    silences: Silences
    changes: list[AlertEvent] = field(default_factory=list)
    """State changes: PENDING, FIRING, RESOLVED, INACTIVE (pending, never fired)."""
    notes: list[AlertEvent] = field(default_factory=list)
    """Events for the notifier (silenced ones left out)."""
    dirty: list[tuple[str, Alert]] = field(default_factory=list)
    """(rule name, alert) whose stored state changed."""

    def muted(self, rule: str, tags: Tags) -> bool:
        """True if a silence mutes this alert's notifications now."""
        return self.silences.mutes(rule, tags, self.t)


@dataclass(frozen=True)
class Evaluation:
    """A rule's latest evaluation, as Prometheus' ``/api/v1/rules`` reports it."""

    at_ns: int
    """The evaluation's time."""
    seconds: float
    """How long the rule took."""
    error: str | None = None
    """Why it failed (its ``lastError``; health ``err``), ``None`` if it did not."""


@dataclass
class RuleState:
    """One rule's active (pending or firing) alerts by series, and how to step them."""

    rule: AlertRule
    name: str
    alerts: dict[SeriesKey, Alert] = field(default_factory=dict)
    seen: set[SeriesKey] = field(default_factory=set)
    """Series that had data at the last evaluation (``no_data: alerting`` only)."""
    masks: dict[int, tuple[list[SeriesKey], np.ndarray[Any, Any]]] = field(default_factory=dict)
    last: Evaluation | None = None
    """The latest evaluation (``None``: not evaluated yet)."""

    def eval_expr(self, store: Store, out: Outcome) -> None:
        """Prometheus' alerting rule: each result series is active, every other is not."""
        started = time.perf_counter()
        try:
            active = self._expr_alerts(store, out.t)
        except Exception as exc:  # as Prometheus: a failed evaluation changes no alert
            logger.warning("alert rule %r: %s", self.name, exc)
            self.last = Evaluation(out.t, time.perf_counter() - started, str(exc))
            return
        error = self._over_limit(active, out.t)
        if error is not None:
            # as Prometheus: the rule fails and forgets every alert it had (checked before
            # stepping, so no alert fires and resolves in the same evaluation)
            logger.warning("alert rule %r: %s", self.name, error)
            for key, a in list(self.alerts.items()):
                self._end(key, a, out)
        else:
            for key, (value, notes) in active.items():
                self._step(key, value, True, True, out, notes)
            for key, a in list(self.alerts.items()):
                if key not in active:
                    self._step(key, a.value, True, False, out)
        self.last = Evaluation(out.t, time.perf_counter() - started, error)

    def _over_limit(self, active: Mapping[SeriesKey, object], t: int) -> str | None:
        """Prometheus' error when more alerts would be active after this evaluation (the
        result's, and firing ones ``keep_firing_for`` holds) than the group's ``limit``."""
        limit = 0 if self.rule.source is None else self.rule.source.limit
        if not limit:
            return None
        keep = self.rule.keep_firing_ns
        held = sum(
            1
            for key, a in self.alerts.items()
            if key not in active
            and a.state is AlertState.FIRING
            and keep > 0
            and (a.keep_since_ns is None or t - a.keep_since_ns < keep)
        )
        count = len(active) + held
        return f"exceeded limit of {limit} with {count} alerts" if count > limit else None

    def _expr_alerts(self, store: Store, t: int) -> dict[SeriesKey, tuple[float, dict[str, str]]]:
        """The alerts of the expression's result at ``t``: key -> (value, annotations).

        Labels and annotations are templated with the result sample's own labels
        (``__name__`` included, the rule's labels not) and value, as Prometheus does.
        """
        rule = self.rule
        active: dict[SeriesKey, tuple[float, dict[str, str]]] = {}
        for labels, value in instant_samples(store, rule.plan, t):
            sample = dict(labels)
            extra = {k: expand(text, sample, value) for k, text in rule.labels.items()}
            key = SeriesKey(rule.metric, result_tags(labels, extra))
            if key in active:
                raise QueryError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            notes = {k: expand(text, sample, value) for k, text in rule.annotations.items()}
            active[key] = (value, notes)
        return active

    def _view(
        self, md: MetricData
    ) -> tuple[list[SeriesKey], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The keys, values and presence of the series of ``md`` this rule selects."""
        values, present = md.values_for(self.rule)
        if not self.rule.tags:
            return md.keys, values, present
        cached = self.masks.get(id(md.keys))
        if cached is None or cached[0] is not md.keys:
            selector = self.rule.selector_tags.items_tuple
            mask = np.fromiter(
                (all(k.tags.get(n) == v for n, v in selector) for k in md.keys),
                dtype=bool,
                count=len(md.keys),
            )
            self.masks = {id(md.keys): (md.keys, mask)}
        else:
            mask = cached[1]
        keys = [k for k, m in zip(md.keys, mask, strict=True) if m]
        return keys, values[mask], present[mask]

    def eval_metric(self, md: MetricData, out: Outcome) -> None:
        """A metric/threshold rule over its metric's values (``md``), vectorised."""
        started = time.perf_counter()
        self._eval_metric(md, out)
        error = None if md.error is None else str(md.error)
        self.last = Evaluation(out.t, time.perf_counter() - started, error)

    def _eval_metric(self, md: MetricData, out: Outcome) -> None:
        rule, t = self.rule, out.t
        keys, values, present = self._view(md)
        alerting = rule.no_data == "alerting"
        with np.errstate(invalid="ignore"):
            cond = OPERATORS[rule.operator](values, rule.threshold)
        todo = np.flatnonzero(cond | (np.isnan(values) & alerting) if alerting else cond)
        steps: dict[SeriesKey, tuple[float, bool | None]] = {}
        held: set[SeriesKey] = set()
        alerts = self.alerts
        for i in todo.tolist():
            key, value = keys[i], float(values[i])
            a = alerts.get(key)
            if a is not None and value == value and a.holds(rule, t):
                # what _step would do for an alert that stays as it is, without its calls:
                # thousands of active alerts made this loop a third of an evaluation
                a.value, a.missing = value, 0
                held.add(key)
            else:
                steps[key] = (value, bool(present[i]))
        if alerts or (alerting and self.seen):
            position = md.position if keys is md.keys else {k: i for i, k in enumerate(keys)}
            waiting = set(alerts) | (self.seen if alerting else set())
            for key in waiting - steps.keys() - held:
                i = position.get(key)
                # unread (failed) metrics are no data (None), not a missing series (False)
                unread = None if md.error is not None else False
                steps[key] = (
                    (math.nan, unread) if i is None else (float(values[i]), bool(present[i]))
                )
        any_present = bool(present.any())
        absent_key = SeriesKey(rule.metric, rule.selector_tags)
        if alerting:
            self.seen = {k for k, p in zip(keys, present, strict=True) if p}
            if not any_present and not steps and md.error is None:
                steps[absent_key] = (math.nan, False)
        for key, (value, is_present) in steps.items():
            if not is_present and key == absent_key and any_present:
                value, is_present = math.nan, True  # the selector has data again
                cond_override: bool | None = False
            else:
                cond_override = None
            self._step(key, value, is_present, cond_override, out)

    def _condition(self, a: Alert | None, value: float, present: bool | None) -> bool | None:
        # present: the series has a value; False: none; None: its metric was not read.
        # Under `ok` a NaN value is compared as PromQL compares it (only `ne` holds)
        rule = self.rule
        if not math.isnan(value) or (present and rule.no_data == "ok"):
            if a is not None:
                a.missing = 0
            threshold = rule.threshold
            if (
                a is not None
                and a.state is AlertState.FIRING
                and rule.recovery_threshold is not None
            ):
                threshold = rule.recovery_threshold
            return bool(OPERATORS[rule.operator](value, threshold))
        if a is not None:
            a.missing = a.missing + 1 if present is False else 0
        if rule.no_data == "alerting":
            return True
        if a is not None and a.missing >= 2:
            return False  # stale
        return False if rule.no_data == "ok" else None

    def _step(
        self,
        key: SeriesKey,
        value: float,
        present: bool | None,
        override: bool | None,
        out: Outcome,
        notes: dict[str, str] | None = None,
    ) -> None:
        rule, name, t = self.rule, self.name, out.t
        a = self.alerts.get(key)
        cond = override if override is not None else self._condition(a, value, present)
        if cond is None:
            return
        if cond:
            if a is None:
                fp = fingerprint_of(name, key.tags)
                a = self.alerts[key] = Alert(key, fp, AlertState.PENDING, t, value)
                a.annotations = notes
                pending = event_of(rule, a, AlertState.PENDING, t)
                out.changes.append(pending)
                out.dirty.append((name, a))
                if rule.for_ns > 0 and not out.muted(name, key.tags):
                    out.notes.append(pending)  # for the log; the notifier keeps it from receivers
            a.value = value
            if notes is not None:
                a.annotations = notes
            if a.keep_since_ns is not None:
                a.keep_since_ns = None
                out.dirty.append((name, a))
            if a.state is AlertState.PENDING and t - a.since_ns >= rule.for_ns:
                a.state, a.fired_at_ns, a.firing_value = AlertState.FIRING, t, value
                out.changes.append(event_of(rule, a, AlertState.FIRING, t))
                out.dirty.append((name, a))
            if a.state is AlertState.FIRING:
                self._maybe_notify(a, out)
            return
        if a is None:
            return
        a.value = value
        if a.state is AlertState.FIRING and rule.keep_firing_ns > 0:
            if a.keep_since_ns is None:
                a.keep_since_ns = t
                out.dirty.append((name, a))
            if t - a.keep_since_ns < rule.keep_firing_ns:
                self._maybe_notify(a, out)
                return
        self._end(key, a, out)

    def _end(self, key: SeriesKey, a: Alert, out: Outcome) -> None:
        """``a`` is no longer active: a pending alert goes inactive, a firing one resolves
        (announced to receivers only if its firing was)."""
        name, t = self.name, out.t
        del self.alerts[key]
        pending = a.state is AlertState.PENDING
        event = event_of(self.rule, a, AlertState.INACTIVE if pending else AlertState.RESOLVED, t)
        a.state = AlertState.INACTIVE
        out.changes.append(event)
        out.dirty.append((name, a))
        if (pending or a.notified_at_ns is not None) and not out.muted(name, key.tags):
            out.notes.append(event)

    def _maybe_notify(self, a: Alert, out: Outcome) -> None:
        rule, t = self.rule, out.t
        due = a.notified_at_ns is None or (
            rule.repeat_ns is not None and t - a.notified_at_ns >= rule.repeat_ns
        )
        if due and not out.muted(self.name, a.key.tags):
            out.notes.append(event_of(rule, a, AlertState.FIRING, t))
            a.notified_at_ns = t
            out.dirty.append((self.name, a))
