"""The rules engine: evaluates alert and recording rules, one state machine per series.

    engine = RuleEngine.from_yaml("config/monitoring.yaml", store=store)
    events = engine.evaluate()          # the state changes of this evaluation
    engine.active_alerts()              # pending and firing, with since/value/severity
    engine.start(interval="15s"); engine.stop()   # on a clock-driven scheduler

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

The parts: the per-series state machine is :mod:`~metricskit.alerting._evaluate`,
recording rules :mod:`~metricskit.alerting._recording`, silences
:mod:`~metricskit.alerting._silences`, persistence :mod:`~metricskit.alerting._state`;
:class:`RuleEngine` runs them in order and owns the schedule.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from metricskit._scheduler import Scheduler
from metricskit._time import NS_PER_S, Clock, SystemClock, TimeLike, parse_duration, to_ns
from metricskit._validation import validate_section
from metricskit._yaml import load_yaml
from metricskit.alerting import _lease
from metricskit.alerting._data import read_metrics
from metricskit.alerting._evaluate import Evaluation, Outcome, RuleState
from metricskit.alerting._lease import LEASE_METRIC, Evaluator
from metricskit.alerting._recording import ComputedSeries, Recorders
from metricskit.alerting._silences import Silence, Silences
from metricskit.alerting._state import (
    STATE_METRIC,
    STATE_REFRESH_NS,
    ActiveAlert,
    Alert,
    event_of,
    persist_alerts,
    read_history,
    restore_alerts,
)
from metricskit.alerting.events import AlertEvent, AlertState, Severity
from metricskit.alerting.rules_model import (
    AlertRule,
    ExprRecordingRule,
    RecordingRule,
    RuleSet,
    parse_rules,
)
from metricskit.errors import InvalidArgumentError, StateError
from metricskit.store import Store

__all__ = [
    "LEASE_METRIC",
    "STATE_METRIC",
    "ActiveAlert",
    "ComputedSeries",
    "Evaluator",
    "RuleEngine",
    "Silence",
]

logger = logging.getLogger("metricskit.alerting.engine")

_TASK = "evaluate"
"""The scheduler task :meth:`RuleEngine.start` adds."""


class RuleEngine:
    """Evaluates alert rules (and recording rules) against a store; see the module docstring.

    ``rules`` is a :class:`RuleSet` or alert rules; ``notifier`` has ``notify(events)``
    and ``test_channels()`` (a :class:`metricskit.alerting.notify.Notifier`); ``clock`` gives
    "now" when :meth:`evaluate` is called without a time and drives :meth:`start`'s
    schedule; ``computed`` (:class:`ComputedSeries`) write their series at each
    evaluation before the alert rules.

    With ``exclusive`` (the default) only one process evaluates a store: each engine
    writes a heartbeat at every :meth:`evaluate`, and one that finds an earlier-started
    evaluator alive stands by (evaluates nothing, sends nothing, reads the stored state
    as an engine that never evaluated) until that one's heartbeat goes stale; see
    :mod:`metricskit.alerting._lease`. ``exclusive=False`` evaluates regardless.
    ``evaluator`` overrides this process' identity (tests run two in one process).
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
        exclusive: bool = True,
        evaluator: Evaluator | None = None,
    ) -> None:
        ruleset = rules if isinstance(rules, RuleSet) else RuleSet(alerts=tuple(rules))
        names = [r.name for r in ruleset.alerts]
        if len(set(names)) != len(names) or "" in names:
            raise InvalidArgumentError("alert rules need distinct, non-empty names")
        self.store = store
        self.notifier = notifier
        self.clock: Clock = clock or SystemClock()
        self.rules = tuple(r for r in ruleset.alerts if r.enabled)
        self._recorders = Recorders(
            ruleset.expr_recording, (*ruleset.recording, *recording), computed
        )
        self._states = {r.name: RuleState(r, r.name) for r in self.rules}
        self._silences = Silences()
        self._lock = threading.RLock()
        self._restored = False
        self._evaluated = False
        self.last_evaluation_seconds: float | None = None
        """How long the latest :meth:`evaluate` took (for profiling)."""
        self.evaluation_interval_seconds: float | None = None
        """How often the rules are evaluated, when known (set by :meth:`start` and by
        ``MonitoringService``); ``/api/v1/rules`` reports it as a group's ``interval``."""
        self._next_refresh_scan: int | None = None
        self.exclusive = exclusive
        self._evaluator = evaluator
        self.leader: Evaluator | None = None
        """The evaluator that led at the latest :meth:`evaluate` (``None`` before one)."""
        self.scheduler: Scheduler | None = None
        """The clock-driven scheduler :meth:`start` made (``scheduler.tick()`` runs an
        evaluation that is due, so tests drive it with a ManualClock)."""

    @property
    def recording(self) -> tuple[RecordingRule, ...]:
        """The recording rules of ``recording:`` (and the ``recording`` argument)."""
        return self._recorders.rules

    @property
    def expr_recording(self) -> tuple[ExprRecordingRule, ...]:
        """The Prometheus ``record:`` rules."""
        return self._recorders.expr_rules

    @property
    def computed(self) -> tuple[ComputedSeries, ...]:
        """The computed series written at each evaluation."""
        return self._recorders.computed

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
        from metricskit.alerting.channels.config import CHANNEL_SECTIONS

        doc, unavailable = substitute_env(load_yaml(path), channels=CHANNEL_SECTIONS)
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
        return self._evaluate_ns(self.clock.now_ns() if now is None else to_ns(now))

    def _evaluate_ns(self, now_ns: int) -> list[AlertEvent]:
        started = time.perf_counter()
        with self._lock:
            if not self._lead(now_ns):
                return []
            # a standby's (or a reader's) restored state may be old: read the leader's last
            self._restore(again=not self._evaluated)
            self._evaluated = True
            self._recorders.record(self.store, now_ns)
            spans: dict[str, int] = {}
            for r in self.rules:
                if r.expr is not None:
                    continue
                span = r.window_ns if r.window_ns is not None else r.lookback_ns
                spans[r.metric] = max(spans.get(r.metric, 0), span)
            data = read_metrics(self.store, spans, now_ns)
            out = Outcome(now_ns, self._silences)
            for rs in self._states.values():
                if rs.rule.expr is not None:
                    rs.eval_expr(self.store, out)
                else:
                    rs.eval_metric(data[rs.rule.metric], out)
            persist_alerts(self.store, out.dirty, now_ns, self._refresh_due(now_ns))
            self.last_evaluation_seconds = time.perf_counter() - started
        if out.notes and self.notifier is not None:
            self.notifier.notify(out.notes)
        return out.changes

    @property
    def evaluator(self) -> Evaluator:
        """This engine's identity among the store's evaluators (its process')."""
        return self._evaluator or _lease.this_process()

    def _lead(self, now_ns: int) -> bool:
        """Write the heartbeat and tell whether this engine evaluates now."""
        if not self.exclusive:
            return True
        me = self.evaluator
        _lease.heartbeat(self.store, me, now_ns, self.evaluation_interval_seconds)
        previous, self.leader = self.leader, _lease.leader(self.store, me, now_ns)
        if self.leader == me:
            if previous is not None and previous != me:
                logger.warning("rules: %s takes over evaluating the alert rules", me.id)
            return True
        if previous != self.leader and self.leader is not None:
            logger.warning(
                "rules: %s evaluates the alert rules of this store; %s stands by",
                self.leader.id,
                me.id,
            )
        self._evaluated = False  # active_alerts() follows the stored state
        return False

    def evaluating(self) -> dict[str, Any]:
        """Which process evaluates this store's rules: ``{"evaluator", "leader",
        "leading"}`` (ids; ``leader`` ``None`` when no heartbeat is fresh), read now."""
        me = self.evaluator
        if not self.exclusive:
            return {"evaluator": me.id, "leader": me.id, "leading": True}
        with self._lock:
            who = _lease.leader(self.store, me if self._evaluated else None, self.clock.now_ns())
        return {
            "evaluator": me.id,
            "leader": None if who is None else who.id,
            "leading": who == me,
        }

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

    def _restore(self, *, again: bool = False) -> None:
        # Marked done only once it worked: evaluating without the persisted state would
        # re-send every notification that already went out, so a failed read raises here
        # (the scheduler logs it) and the next call tries again.
        if self._restored and not again:
            return
        restored = restore_alerts(self.store, {n: r.rule for n, r in self._states.items()})
        if again:
            for rs in self._states.values():
                rs.alerts.clear()
        for name, alert in restored:
            self._states[name].alerts[alert.key] = alert
        self._restored = True

    def rule_evaluations(self) -> dict[str, Evaluation]:
        """Each alert and ``record:`` rule's latest evaluation (time, duration, error), by
        rule name; a rule not evaluated yet is missing."""
        with self._lock:
            out = {n: rs.last for n, rs in self._states.items() if rs.last is not None}
            return {**out, **self._recorders.evaluations}

    def history(
        self, rule: str | None = None, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[dict[str, Any]]:
        """Persisted state changes, oldest first: ``{rule, tags, state, at_ns}``."""
        return read_history(self.store, rule, start, end)

    # -- queries, silences, lifecycle ---------------------------------------------------

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts as of the last evaluation (silenced ones included).

        An engine that has not evaluated (``metricskit serve`` or ``status`` beside
        ``metricskit start``, an application that only records) reads them as the
        evaluating process last persisted them, at every call.
        """
        now = self.clock.now_ns()
        out = []
        with self._lock:
            self._restore(again=not self._evaluated)
            for rs in self._states.values():
                rule = rs.rule
                for a in rs.alerts.values():
                    silenced = self._silences.mutes(rule.name, a.key.tags, now)
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
        return self._silences.add(rule, tags or {}, until_ns, comment)

    def silences(self) -> list[Silence]:
        """Silences that have not expired."""
        return self._silences.active(self.clock.now_ns())

    def test_channels(self) -> dict[str, str]:
        """Send a test event through every channel (the notifier's ``test_channels``)."""
        if self.notifier is None:
            return {}
        result: dict[str, str] = self.notifier.test_channels()
        return result

    def start(self, interval: str | float = "15s") -> None:
        """Evaluate every ``interval`` by the engine's clock, from a background thread,
        until :meth:`stop`.

        The schedule is :attr:`scheduler` (the package's clock-driven scheduler): the
        first evaluation is due at once, each next one ``interval`` after the last.
        """
        period = parse_duration(interval) / NS_PER_S
        if period <= 0:
            raise InvalidArgumentError("interval must be longer than 0")
        with self._lock:
            if self.running:
                raise StateError("the rule engine is already running")
            scheduler = Scheduler(self.clock)
            scheduler.every(_TASK, period, timed=self._scheduled)
            self.evaluation_interval_seconds = period
            self.scheduler = scheduler
            scheduler.start("metricskit-rules")

    def _scheduled(self, now_ns: int) -> None:
        # None (not the events) tells the scheduler "next due one interval from now"; it
        # logs a failed evaluation and keeps the schedule, so the next one retries
        self._evaluate_ns(now_ns)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the schedule started by :meth:`start` and wait for an evaluation in
        progress."""
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.stop(timeout)
            self.release()

    def release(self) -> None:
        """Give up evaluating this store, if this engine led: a standby takes over at its
        next evaluation instead of after the lease."""
        if self.exclusive and self.leader == self.evaluator:
            _lease.release(self.store, self.evaluator, self.clock.now_ns())
            self.leader = None

    @property
    def running(self) -> bool:
        """True while the background schedule runs."""
        return self.scheduler is not None and self.scheduler.running
