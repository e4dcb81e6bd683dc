"""The rules engine: evaluates alert and recording rules, one state machine per series.

    engine = RuleEngine.from_yaml("config/monitoring.yaml", store=store)
    events = engine.evaluate()          # the state changes of this evaluation
    engine.active_alerts()              # pending and firing, with since/value/severity
    engine.start(interval="15s"); engine.stop()

Per rule and series: inactive -> pending (condition true) -> firing (true at every
evaluation for ``duration_seconds``) -> resolved, as a Prometheus alerting rule with
``for:``. Notifications go out when an alert starts firing and when it resolves, once
each, and while it keeps firing again every ``repeat_interval``; a resolve is only
announced for an alert whose firing was. Silences mute notifications, never the state.

No data (a NaN value, a failed read, a series gone silent) goes to the rule's
``no_data`` policy: ``ok`` (the condition is false), ``alerting`` (true; with no series
at all the rule alerts on its own selector) or ``keep`` (nothing changes). A series gone
for two evaluations is stale and resolves, except under ``alerting``.

State is persisted in the store as series ``metricskit.alerts.state`` tagged ``rule``,
``fingerprint``, ``labels`` (the series' tags as JSON) and ``field``, only the fields that
changed, and every field of an active alert again within the hour so that retention
never deletes it; see ``metricskit.alerting._state`` and ``docs/rules.md``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from metricskit._time import NS_PER_S, Clock, SystemClock, TimeLike, parse_duration, to_ns
from metricskit._validation import validate_section
from metricskit._yaml import load_yaml
from metricskit.alerting._data import MetricData, read_metrics
from metricskit.alerting._expr import instant_samples
from metricskit.alerting._state import (
    STATE_METRIC,
    STATE_REFRESH_NS,
    ActiveAlert,
    Alert,
    Silence,
    event_of,
    persist_alerts,
    read_history,
    restore_alerts,
)
from metricskit.alerting._templates import expand
from metricskit.alerting.events import AlertEvent, AlertState, Severity, fingerprint_of
from metricskit.alerting.rules_model import (
    OPERATORS,
    AlertRule,
    RecordingRule,
    RuleSet,
    parse_rules,
)
from metricskit.errors import InvalidArgumentError, StateError
from metricskit.model import Series, SeriesKey, Tags
from metricskit.query._values import NAME
from metricskit.store import Store

__all__ = ["STATE_METRIC", "ActiveAlert", "ComputedSeries", "RuleEngine", "Silence"]

logger = logging.getLogger("metricskit.alerting.engine")


def _result_tags(labels: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> Tags:
    # Prometheus drops the metric name and lets rule labels win; an empty one removes it
    tags = {k: v for k, v in labels if k != NAME}
    tags.update(extra)
    return Tags({k: v for k, v in tags.items() if v != ""})


class ComputedSeries(Protocol):
    """Series the engine writes at every evaluation before the alert rules, as a
    recording rule does (e.g. :class:`metricskit.alerting.performance_rules.PerformanceFigures`)."""

    def series_at(self, store: Store, now_ns: int) -> list[Series]:
        """The samples to write for an evaluation at ``now_ns``."""
        ...


@dataclass
class _RuleState:
    rule: AlertRule
    name: str
    alerts: dict[SeriesKey, Alert] = field(default_factory=dict)
    seen: set[SeriesKey] = field(default_factory=set)
    masks: dict[int, tuple[list[SeriesKey], np.ndarray[Any, Any]]] = field(default_factory=dict)


class RuleEngine:
    """Evaluates alert rules (and recording rules) against a store; see the module docstring.

    ``rules`` is a :class:`RuleSet` or alert rules; ``notifier`` has ``notify(events)``
    and ``test_channels()`` (a :class:`metricskit.alerting.notify.Notifier`); ``clock`` gives
    "now" when :meth:`evaluate` is called without a time; ``computed``
    (:class:`ComputedSeries`) write their series at each evaluation before the alert rules.
    """

    def __init__(
        self,
        rules: RuleSet | Iterable[AlertRule],
        store: Store,
        *,
        notifier: Any = None,
        clock: Clock | None = None,
        recording: Iterable[RecordingRule] = (),
        computed: Iterable[ComputedSeries] = (),
    ) -> None:
        ruleset = rules if isinstance(rules, RuleSet) else RuleSet(alerts=tuple(rules))
        names = [r.name for r in ruleset.alerts]
        if len(set(names)) != len(names) or "" in names:
            raise InvalidArgumentError("alert rules need distinct, non-empty names")
        self.store = store
        self.notifier = notifier
        self.clock: Clock = clock or SystemClock()
        self.rules = tuple(r for r in ruleset.alerts if r.enabled)
        self.recording = (*ruleset.recording, *recording)
        self._derivations = [r.derivation() for r in self.recording]
        self.expr_recording = ruleset.expr_recording
        self.computed = tuple(computed)
        self._states = {r.name: _RuleState(r, r.name) for r in self.rules}
        self._silences: list[Silence] = []
        self._next_silence = 1
        self._lock = threading.RLock()
        self._restored = False
        self.last_evaluation_seconds: float | None = None
        """How long the latest :meth:`evaluate` took (for profiling)."""
        self._next_refresh_scan: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_yaml(
        cls,
        path: str,
        store: Store,
        *,
        notifier: Any = None,
        clock: Clock | None = None,
        log_dir: str | None = None,
    ) -> RuleEngine:
        """Load ``alerts``/``recording`` from a YAML file; build the notifier from its
        ``notifications`` section unless one is given.

        ``${VAR}`` is substituted as the config loader does (:func:`metricskit._env.
        substitute_env`): a channel whose variable is not set is off, with a warning.
        """
        from metricskit._env import substitute_env

        doc, unavailable = substitute_env(load_yaml(path))
        ruleset = parse_rules(doc)
        if notifier is None:
            from metricskit.alerting.channels.config import NotificationsConfig
            from metricskit.alerting.notify import Notifier

            # already substituted above, as load_config does: the same file works in both
            section = doc.data.get("notifications") if isinstance(doc.data, dict) else None
            config = validate_section(NotificationsConfig, section, ("notifications",), doc)
            # a relative log path is relative to the rule file, as in the config loader
            base = log_dir if log_dir is not None else os.path.dirname(os.path.abspath(path))
            notifier = Notifier.from_config(config, log_dir=base, unavailable=unavailable)
            for warning in notifier.routing_warnings(ruleset.alerts, doc):
                logger.warning("%s", warning)
        return cls(ruleset, store, notifier=notifier, clock=clock)

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, now: TimeLike | None = None) -> list[AlertEvent]:
        """Evaluate every rule at ``now`` (default: the clock); return the state changes.

        Changes are PENDING, FIRING, RESOLVED, and INACTIVE for a pending alert whose
        condition went away before it fired. Notifications are handed to the notifier.
        """
        t = self.clock.now_ns() if now is None else to_ns(now)
        started = time.perf_counter()
        with self._lock:
            self._restore()
            self._record(t)
            spans: dict[str, int] = {}
            for r in self.rules:
                if r.expr is not None:
                    continue
                span = r.window_ns if r.window_ns is not None else r.lookback_ns
                spans[r.metric] = max(spans.get(r.metric, 0), span)
            data = read_metrics(self.store, spans, t)
            changes: list[AlertEvent] = []
            notes: list[AlertEvent] = []
            dirty: list[tuple[str, Alert]] = []
            for rs in self._states.values():
                if rs.rule.expr is not None:
                    self._eval_expr(rs, t, changes, notes, dirty)
                else:
                    self._eval_rule(rs, data[rs.rule.metric], t, changes, notes, dirty)
            persist_alerts(self.store, dirty, t, self._refresh_due(t))
            self.last_evaluation_seconds = time.perf_counter() - started
        if notes and self.notifier is not None:
            self.notifier.notify(notes)
        return changes

    def _refresh_due(self, t: int) -> list[tuple[str, Alert]]:
        """Active alerts whose stored state must be rewritten to outlive retention.

        Looked for every eighth of :data:`STATE_REFRESH_NS`, not at every evaluation:
        with thousands of active alerts the scan would cost more than the rest.
        """
        if self._next_refresh_scan is not None and t < self._next_refresh_scan:
            return []
        self._next_refresh_scan = t + STATE_REFRESH_NS // 8
        return [
            (rs.name, a)
            for rs in self._states.values()
            for a in rs.alerts.values()
            if a.refresh_due(t)
        ]

    def _record(self, t: int) -> None:
        for rule in self.expr_recording:
            try:
                written = [
                    Series(
                        SeriesKey(rule.record, _result_tags(labels, rule.labels)),
                        np.array([t]),
                        np.array([value], dtype=float),
                    )
                    for labels, value in instant_samples(self.store, rule.plan, t)
                ]
                # written at once: a later rule of the same evaluation reads this result
                if written:
                    self.store.write(written)
            except Exception as exc:  # one broken recording rule must not stop the rest
                logger.warning("recording rule %r failed: %s", rule.name, exc)
        batch = []
        for rec, derivation in zip(self.recording, self._derivations, strict=True):
            try:
                for tags, value in derivation.evaluate(self.store, t).items():
                    key = SeriesKey.of(derivation.target, tags)
                    batch.append(Series(key, np.array([t]), np.array([value], dtype=float)))
            except Exception as exc:  # one broken recording rule must not stop the rest
                logger.warning("recording rule %r failed: %s", rec.name, exc)
        for source in self.computed:
            try:
                batch.extend(source.series_at(self.store, t))
            except Exception as exc:
                logger.warning("computed series %r failed: %s", source, exc)
        if batch:
            self.store.write(batch)

    def _eval_expr(
        self,
        rs: _RuleState,
        t: int,
        changes: list[AlertEvent],
        notes: list[AlertEvent],
        dirty: list[tuple[str, Alert]],
    ) -> None:
        """Prometheus' alerting rule: each result series is active, every other is not."""
        rule = rs.rule
        try:
            samples = instant_samples(self.store, rule.plan, t)
        except Exception as exc:  # as Prometheus: a failed query changes no alert
            logger.warning("alert rule %r: %s", rs.name, exc)
            return
        active: dict[SeriesKey, float] = {}
        for labels, value in samples:
            extra = {k: expand(text, dict(labels), value) for k, text in rule.labels.items()}
            active[SeriesKey(rule.metric, _result_tags(labels, extra))] = value
        for key, value in active.items():
            self._step(rs, key, value, True, True, t, changes, notes, dirty)
        for key, a in list(rs.alerts.items()):
            if key not in active:
                self._step(rs, key, a.value, True, False, t, changes, notes, dirty)

    def _rule_view(
        self, rs: _RuleState, md: MetricData
    ) -> tuple[list[SeriesKey], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        values, present = md.values_for(rs.rule)
        if not rs.rule.tags:
            return md.keys, values, present
        cached = rs.masks.get(id(md.keys))
        if cached is None or cached[0] is not md.keys:
            selector = rs.rule.selector_tags.items_tuple
            mask = np.fromiter(
                (all(k.tags.get(n) == v for n, v in selector) for k in md.keys),
                dtype=bool,
                count=len(md.keys),
            )
            rs.masks = {id(md.keys): (md.keys, mask)}
        else:
            mask = cached[1]
        keys = [k for k, m in zip(md.keys, mask, strict=True) if m]
        return keys, values[mask], present[mask]

    def _eval_rule(
        self,
        rs: _RuleState,
        md: MetricData,
        t: int,
        changes: list[AlertEvent],
        notes: list[AlertEvent],
        dirty: list[tuple[str, Alert]],
    ) -> None:
        rule = rs.rule
        keys, values, present = self._rule_view(rs, md)
        alerting = rule.no_data == "alerting"
        with np.errstate(invalid="ignore"):
            cond = OPERATORS[rule.operator](values, rule.threshold)
        todo = np.flatnonzero(cond | (np.isnan(values) & alerting) if alerting else cond)
        steps: dict[SeriesKey, tuple[float, bool | None]] = {}
        held: set[SeriesKey] = set()
        alerts = rs.alerts
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
        if alerts or (alerting and rs.seen):
            position = md.position if keys is md.keys else {k: i for i, k in enumerate(keys)}
            waiting = set(alerts) | (rs.seen if alerting else set())
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
            rs.seen = {k for k, p in zip(keys, present, strict=True) if p}
            if not any_present and not steps and md.error is None:
                steps[absent_key] = (math.nan, False)
        for key, (value, is_present) in steps.items():
            if not is_present and key == absent_key and any_present:
                value, is_present = math.nan, True  # the selector has data again
                cond_override: bool | None = False
            else:
                cond_override = None
            self._step(rs, key, value, is_present, cond_override, t, changes, notes, dirty)

    def _condition(
        self, rule: AlertRule, a: Alert | None, value: float, present: bool | None
    ) -> bool | None:
        # present: the series has a value; False: none; None: its metric was not read.
        # Under `ok` a NaN value is compared as PromQL compares it (only `ne` holds)
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
        rs: _RuleState,
        key: SeriesKey,
        value: float,
        present: bool | None,
        override: bool | None,
        t: int,
        changes: list[AlertEvent],
        notes: list[AlertEvent],
        dirty: list[tuple[str, Alert]],
    ) -> None:
        rule = rs.rule
        a = rs.alerts.get(key)
        cond = override if override is not None else self._condition(rule, a, value, present)
        if cond is None:
            return
        if cond:
            if a is None:
                fp = fingerprint_of(rs.name, key.tags)
                a = rs.alerts[key] = Alert(key, fp, AlertState.PENDING, t, value)
                pending = event_of(rule, a, AlertState.PENDING, t)
                changes.append(pending)
                dirty.append((rs.name, a))
                if rule.for_ns > 0 and not self._silenced(rs.name, key.tags, t):
                    notes.append(pending)  # for the log; the notifier keeps it from receivers
            a.value = value
            if a.keep_since_ns is not None:
                a.keep_since_ns = None
                dirty.append((rs.name, a))
            if a.state is AlertState.PENDING and t - a.since_ns >= rule.for_ns:
                a.state, a.fired_at_ns, a.firing_value = AlertState.FIRING, t, value
                changes.append(event_of(rule, a, AlertState.FIRING, t))
                dirty.append((rs.name, a))
            if a.state is AlertState.FIRING:
                self._maybe_notify(rule, a, t, notes, dirty)
            return
        if a is None:
            return
        a.value = value
        if a.state is AlertState.PENDING:
            del rs.alerts[key]
            a.state = AlertState.INACTIVE
            inactive = event_of(rule, a, AlertState.INACTIVE, t)
            changes.append(inactive)
            dirty.append((rs.name, a))
            if not self._silenced(rs.name, key.tags, t):
                notes.append(inactive)
            return
        if rule.keep_firing_ns > 0:
            if a.keep_since_ns is None:
                a.keep_since_ns = t
                dirty.append((rs.name, a))
            if t - a.keep_since_ns < rule.keep_firing_ns:
                self._maybe_notify(rule, a, t, notes, dirty)
                return
        del rs.alerts[key]
        event = event_of(rule, a, AlertState.RESOLVED, t)
        changes.append(event)
        a.state = AlertState.INACTIVE
        dirty.append((rs.name, a))
        if a.notified_at_ns is not None and not self._silenced(rs.name, key.tags, t):
            notes.append(event)

    def _maybe_notify(
        self,
        rule: AlertRule,
        a: Alert,
        t: int,
        notes: list[AlertEvent],
        dirty: list[tuple[str, Alert]],
    ) -> None:
        due = a.notified_at_ns is None or (
            rule.repeat_ns is not None and t - a.notified_at_ns >= rule.repeat_ns
        )
        if due and not self._silenced(rule.name, a.key.tags, t):
            notes.append(event_of(rule, a, AlertState.FIRING, t))
            a.notified_at_ns = t
            dirty.append((rule.name, a))

    def _restore(self) -> None:
        # Marked done only once it worked: evaluating without the persisted state would
        # re-send every notification that already went out, so a failed read raises here
        # (the loop logs it) and the next call tries again.
        if not self._restored:
            for name, alert in restore_alerts(
                self.store, {n: r.rule for n, r in self._states.items()}
            ):
                self._states[name].alerts[alert.key] = alert
            self._restored = True

    def history(
        self, rule: str | None = None, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[dict[str, Any]]:
        """Persisted state changes, oldest first: ``{rule, tags, state, at_ns}``."""
        return read_history(self.store, rule, start, end)

    # -- queries, silences, lifecycle ---------------------------------------------------

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts as of the last evaluation (silenced ones included)."""
        now = self.clock.now_ns()
        out = []
        with self._lock:
            self._restore()
            for rs in self._states.values():
                rule = rs.rule
                for a in rs.alerts.values():
                    silenced = self._silenced(rule.name, a.key.tags, now)
                    out.append(event_of(rule, a, a.state, now, silenced=silenced))
        out.sort(key=lambda x: (-x.severity.rank, x.rule, x.tags))
        return out

    def overall_status(self) -> str:
        """``"critical"`` if a critical alert fires, else ``"warning"`` if a warning does,
        else ``"healthy"``."""
        firing = [a.severity for a in self.active_alerts() if a.state is AlertState.FIRING]
        if Severity.CRITICAL in firing:
            return "critical"
        return "warning" if Severity.WARNING in firing else "healthy"

    def silence(
        self,
        rule: str | None = None,
        tags: Mapping[str, str] | None = None,
        until: TimeLike | None = None,
        *,
        duration: str | float | None = None,
        comment: str = "",
    ) -> Silence:
        """Mute notifications for ``rule`` (any if ``None``) and ``tags`` until a time.

        Give ``until`` (a time) or ``duration`` (from now). Alerts stay in
        :meth:`active_alerts`; a firing notification muted by a silence goes out when
        the silence ends if the alert still fires.
        """
        if (until is None) == (duration is None):
            raise InvalidArgumentError("give exactly one of until= or duration=")
        until_ns = (
            to_ns(until) if until is not None else self.clock.now_ns() + parse_duration(duration)
        )
        if rule is not None and rule not in self._states:
            known = ", ".join(sorted(self._states))
            raise InvalidArgumentError(f"unknown rule {rule!r}; known: {known}")
        with self._lock:
            s = Silence(self._next_silence, rule, Tags(tags or {}), until_ns, comment)
            self._next_silence += 1
            self._silences.append(s)
        return s

    def silences(self) -> list[Silence]:
        """Silences that have not expired."""
        now = self.clock.now_ns()
        with self._lock:
            return [s for s in self._silences if s.until_ns > now]

    def _silenced(self, rule: str, tags: Tags, now: int) -> bool:
        return any(s.matches(rule, tags, now) for s in self._silences)

    def test_channels(self) -> dict[str, str]:
        """Send a test event through every channel (the notifier's ``test_channels``)."""
        if self.notifier is None:
            return {}
        result: dict[str, str] = self.notifier.test_channels()
        return result

    def start(self, interval: str | float = "15s") -> None:
        """Evaluate every ``interval`` on a background thread until :meth:`stop`."""
        period = parse_duration(interval) / NS_PER_S
        if period <= 0:
            raise InvalidArgumentError("interval must be longer than 0")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise StateError("the rule engine is already running")
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(period,), name="metricskit-rules", daemon=True
            )
            self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception:  # the loop must outlive one bad evaluation
                logger.exception("rules: evaluation failed")
            self._stop.wait(period)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background loop started by :meth:`start` and wait for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the background loop runs."""
        return self._thread is not None and self._thread.is_alive()
