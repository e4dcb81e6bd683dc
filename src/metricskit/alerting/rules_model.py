"""Rule definitions: the seed's ``alerts:`` YAML, recording rules, validation with lines.

Alert rules are the seed's format, unchanged, with optional extras::

    alerts:
      system:                                   # group
        high_cpu:                               # rule name -> "system.high_cpu"
          metric: "system.cpu.usage_percent"
          threshold: 80.0
          operator: "gt"                        # gt gte lt lte eq ne
          duration_seconds: 300                 # the "for" clock
          severity: "warning"                   # info warning critical
          enabled: true
          channels: ["slack"]
          tags: {host: web1}                    # optional: only these series
          stat: p95                             # optional: avg min max sum count stddev
          window: 5m                            #   first last pNN rate increase, over window
          recovery_threshold: 70                # optional hysteresis
          keep_firing_seconds: 120              # optional
          repeat_interval: 1h                   # optional re-notification
          no_data: keep                         # ok | alerting | keep (default)
          summary: "{rule}: {metric} is {value}"

Recording rules compute a series from another on the engine's schedule; each is a
:class:`~metricskit.collect.derive.Derivation` (same keys)::

    recording:
      business:
        cost_today:
          target: business.ai_calls.cost_today
          source: business.ai_calls.cost_usd
          function: sum
          window: today

:func:`parse_rules` validates with pydantic and reports the first problems as a
:class:`~metricskit.errors.ConfigError` with the file and the line of the offending key.
Sections other than ``alerts`` and ``recording`` belong to the rest of the config and are
ignored here.
"""

from __future__ import annotations

import difflib
import math
import operator as _op
import re
import string
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from metricskit._time import NS_PER_S, parse_duration
from metricskit._validation import (
    FIELD_ERROR,
    Number,
    describe_pydantic_error,
    pydantic_config_error,
)
from metricskit._yaml import YamlDocument, load_yaml, load_yaml_text
from metricskit.alerting._templates import check_template
from metricskit.alerting.events import Severity
from metricskit.collect.derive import FUNCTIONS, Derivation
from metricskit.errors import ConfigError, QueryError
from metricskit.model import Tags, validate_name, validate_tags

if TYPE_CHECKING:
    from metricskit.query._plan import Node

__all__ = [
    "OPERATORS",
    "STATS",
    "AlertRule",
    "ExprRecordingRule",
    "RecordingRule",
    "RuleSet",
    "load_rules",
    "parse_rules",
]

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": _op.gt,
    "gte": _op.ge,
    "lt": _op.lt,
    "lte": _op.le,
    "eq": _op.eq,
    "ne": _op.ne,
}
"""The comparison each operator name stands for (they work on numpy arrays too)."""
OPERATOR_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "ne": "!="}
"""The PromQL spelling of each operator."""

STATS = ("last", "avg", "mean", "min", "max", "sum", "count", "stddev", "first", "rate", "increase")
"""Statistics a rule may alert on; ``pNN`` (e.g. ``p95``, ``p99.9``) are percentiles too."""
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")
TEMPLATE_FIELDS = (
    "rule",
    "group",
    "metric",
    "value",
    "threshold",
    "recovery_threshold",
    "operator",
    "tags",
    "severity",
    "stat",
    "window",
    "duration",
    "state",
)
"""The ``{placeholders}`` ``summary`` and ``description`` may use."""


EXPR_METRIC = ""
"""``metric`` of an expression rule (it has none; its alerts' keys carry this name)."""
_METRIC_ONLY = (
    "metric",
    "threshold",
    "operator",
    "stat",
    "window",
    "tags",
    "recovery_threshold",
    "no_data",
    "lookback",
    "summary",
    "description",
)


def parse_expr(expr: str) -> Node:
    """The checked plan of a PromQL expression (QueryError if it is not supported)."""
    from metricskit.query import parse

    return parse(expr)


def check_expr(expr: str) -> str:
    """Return ``expr`` if the query engine can run it, else raise ValueError (with why)."""
    try:
        parse_expr(expr)
    except QueryError as exc:
        raise ValueError(f"invalid PromQL: {exc}") from None
    return expr


def _seconds(value: Any) -> float:
    # Durations may be seconds (the seed) or strings like "5m"; both end up as seconds.
    return parse_duration(value) / NS_PER_S


Seconds = Annotated[float, BeforeValidator(_seconds)]


def _check_template(text: str | None) -> str | None:
    if text is None:
        return None
    for _, field_name, _, _ in string.Formatter().parse(text):
        if field_name is None:
            continue
        root = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        if root not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown placeholder {{{field_name}}}; use {', '.join(TEMPLATE_FIELDS)}"
            )
    return text


class AlertRule(BaseModel):
    """One alert rule: a metric compared with a threshold, held for ``duration_seconds``.

    Build it from YAML through :func:`parse_rules`, or in code with :meth:`create`.
    ``name`` (``"group.rule"``) comes from the YAML keys, not from a field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    threshold: Number
    operator: Literal["gt", "gte", "lt", "lte", "eq", "ne"]
    expr: str | None = None
    """A PromQL expression: every series of its result is an alert (Prometheus' semantics)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to an expression rule's alerts (templated: ``{{ $labels.x }}``)."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """An expression rule's annotations; ``summary``/``description`` fill the event's."""
    duration_seconds: Seconds = 0.0
    severity: Severity = Severity.WARNING
    enabled: bool = True
    channels: tuple[str, ...] = ("log",)
    tags: dict[str, str] = Field(default_factory=dict)
    stat: str = "last"
    window: Seconds | None = None
    lookback: Seconds = 300.0
    summary: str | None = None
    description: str | None = None
    repeat_interval: Seconds | None = None
    keep_firing_seconds: Seconds = 0.0
    no_data: Literal["ok", "alerting", "keep"] = "keep"
    recovery_threshold: Number | None = None

    _name: str = PrivateAttr(default="")
    _group: str = PrivateAttr(default="")
    _alert: str | None = PrivateAttr(default=None)

    @classmethod
    def create(cls, name: str, **fields: Any) -> AlertRule:
        """Build a rule in code: ``AlertRule.create("system.high_cpu", metric=..., ...)``.

        Bad fields raise :class:`~metricskit.errors.ConfigError` (a ``ValueError``) naming them.
        """
        try:
            rule = cls(**fields)
        except ValidationError as exc:
            known = tuple(cls.model_fields)
            problems = "; ".join(describe_pydantic_error(e, known) for e in exc.errors()[:3])
            raise ConfigError(f"alert rule {name!r}: {problems}") from exc
        group, _, _ = name.rpartition(".")
        rule._name, rule._group = name, group
        return rule

    @property
    def name(self) -> str:
        """``"group.rule"`` as written in the YAML (the rule's identity)."""
        return self._name

    @property
    def group(self) -> str:
        """The YAML group the rule sits in (``"system"``)."""
        return self._group

    @property
    def prometheus_alert(self) -> str | None:
        """The ``alert:`` name of a rule from a Prometheus ``groups:`` file (``"HighLoad"``;
        its :attr:`name` is ``"group.HighLoad"``), which Prometheus' API reports as the
        ``alertname``; ``None`` for the seed's rules, whose ``alertname`` is :attr:`name`."""
        return self._alert

    @cached_property
    def for_ns(self) -> int:
        """``duration_seconds`` in ns."""
        return round(self.duration_seconds * NS_PER_S)

    @cached_property
    def window_ns(self) -> int | None:
        """``window`` in ns, ``None`` for a last-value rule."""
        return None if self.window is None else round(self.window * NS_PER_S)

    @cached_property
    def lookback_ns(self) -> int:
        """How old the newest sample of a last-value rule may be, in ns."""
        return round(self.lookback * NS_PER_S)

    @cached_property
    def keep_firing_ns(self) -> int:
        """``keep_firing_seconds`` in ns."""
        return round(self.keep_firing_seconds * NS_PER_S)

    @cached_property
    def repeat_ns(self) -> int | None:
        """``repeat_interval`` in ns, ``None`` for no re-notification."""
        return None if self.repeat_interval is None else round(self.repeat_interval * NS_PER_S)

    @cached_property
    def quantile(self) -> float | None:
        """The quantile (0..1) of a ``pNN`` stat, else ``None``."""
        match = _PERCENTILE.fullmatch(self.stat)
        return float(match.group(1)) / 100 if match else None

    @cached_property
    def selector_tags(self) -> Tags:
        """``tags`` as validated :class:`Tags`."""
        return Tags(self.tags)

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, v: str) -> str:
        return v if v == EXPR_METRIC else validate_name(v)

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        return None if v is None else check_expr(v)

    @field_validator("labels", "annotations")
    @classmethod
    def _prom_templates(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            validate_tags({key: "x"})
            check_template(text)
        return v

    @cached_property
    def plan(self) -> Node:
        """The checked PromQL plan of ``expr`` (expression rules only)."""
        if self.expr is None:
            raise ConfigError(f"alert rule {self.name!r} has no expr")
        return parse_expr(self.expr)

    @model_validator(mode="before")
    @classmethod
    def _expr_or_metric(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("expr") is None:
            if data.get("metric") == EXPR_METRIC:  # the placeholder is no metric name
                validate_name(EXPR_METRIC)
            return data
        # an expression rule is the condition itself: these belong to metric rules
        for key in _METRIC_ONLY:
            if key in data:
                message = f"{key} belongs to a metric/threshold rule, not to one with expr"
                raise PydanticCustomError(
                    FIELD_ERROR, "{message}", {"field": key, "message": message}
                )
        return {**data, "metric": EXPR_METRIC, "threshold": math.nan, "operator": "gt"}

    @field_validator("threshold", "recovery_threshold")
    @classmethod
    def _finite(cls, v: float | None, info: ValidationInfo) -> float | None:
        if info.data.get("metric") == EXPR_METRIC and info.field_name == "threshold":
            return v  # an expression rule has no threshold (NaN)
        if v is not None and not math.isfinite(v):
            raise ValueError(f"must be a finite number, not {v}")
        return v

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> Severity:
        try:
            return Severity.from_str(v)
        except ConfigError as exc:
            raise ValueError(exc.message) from None

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, v: Any) -> Any:
        if isinstance(v, str):
            return (v,)
        return v

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not c.strip() for c in v):
            raise ValueError("channel names must not be empty")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return dict(validate_tags(v, info.data.get("metric")).items_tuple)

    @field_validator("stat")
    @classmethod
    def _stat(cls, v: str) -> str:
        if v in STATS or _PERCENTILE.fullmatch(v):
            return v
        hint = difflib.get_close_matches(v, STATS, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown stat {v!r}{did}; use one of {', '.join(STATS)} or pNN")

    @field_validator("window")
    @classmethod
    def _window(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("window must be longer than 0")
        return v

    @model_validator(mode="after")
    def _stat_and_window(self) -> AlertRule:
        # Reported at the key that is written (stat or window), not at the missing one.
        if self.window is None and self.stat != "last":
            raise PydanticCustomError(
                FIELD_ERROR,
                "{message}",
                {"field": "stat", "message": f"stat {self.stat!r} needs a window (e.g. 5m)"},
            )
        if self.window is not None and self.stat == "last":
            message = "window needs a stat (e.g. stat: p95); a last-value rule has none"
            raise PydanticCustomError(
                FIELD_ERROR, "{message}", {"field": "window", "message": message}
            )
        return self

    @field_validator("lookback", "repeat_interval")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be longer than 0")
        return v

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return _check_template(v)

    @field_validator("recovery_threshold")
    @classmethod
    def _recovery(cls, v: float | None, info: ValidationInfo) -> float | None:
        op, threshold = info.data.get("operator"), info.data.get("threshold")
        if v is None or op is None or threshold is None:
            return v
        if op in ("eq", "ne"):
            raise ValueError(f"a recovery threshold needs an ordering operator, not {op!r}")
        if op in ("gt", "gte") and v > threshold:
            raise ValueError(f"must be <= threshold {threshold} for operator {op!r}")
        if op in ("lt", "lte") and v < threshold:
            raise ValueError(f"must be >= threshold {threshold} for operator {op!r}")
        return v


class RecordingRule(BaseModel):
    """A recording rule: the keys of :class:`~metricskit.collect.derive.Derivation`, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    source: str
    function: str
    window: str | Number = "1h"
    scale: Number = 1.0
    by: list[str] | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    tz: str | None = None

    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """``"group.rule"`` as written in the YAML."""
        return self._name

    @field_validator("target", "source")
    @classmethod
    def _metric_name(cls, v: str) -> str:
        return validate_name(v)

    @field_validator("function")
    @classmethod
    def _function(cls, v: str) -> str:
        if v not in FUNCTIONS:
            hint = difflib.get_close_matches(v, FUNCTIONS, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown function {v!r}{did}; use one of {', '.join(FUNCTIONS)}")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | float) -> str | float:
        if v != "today" and parse_duration(v) <= 0:
            raise ValueError("window must be longer than 0 (or 'today')")
        return v

    def derivation(self) -> Derivation:
        """The :class:`~metricskit.collect.derive.Derivation` this rule evaluates."""
        return Derivation.from_dict(self.model_dump(exclude_none=True))


class ExprRecordingRule(BaseModel):
    """A Prometheus recording rule: ``expr``'s result series written as ``record``.

    Each result series is stored under the name ``record`` (as given) with its labels
    (``__name__`` dropped) and ``labels`` added, at the evaluation time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: str
    expr: str
    labels: dict[str, str] = Field(default_factory=dict)

    _name: str = PrivateAttr(default="")
    _group: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """``"group.record"``."""
        return self._name

    @property
    def group(self) -> str:
        """The name of the Prometheus rule group it sits in (which may hold dots)."""
        return self._group

    @field_validator("record")
    @classmethod
    def _record(cls, v: str) -> str:
        return validate_name(v)

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str) -> str:
        return check_expr(v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(validate_tags(v).items_tuple)

    @cached_property
    def plan(self) -> Node:
        """The checked PromQL plan of ``expr``."""
        return parse_expr(self.expr)


class _PromRule(BaseModel):
    # One entry of a Prometheus rule group, keys as Prometheus spells them.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str | None = None
    record: str | None = None
    expr: str | int | float
    for_: Seconds = Field(default=0.0, alias="for")
    keep_firing_for: Seconds = 0.0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | float) -> str:
        return check_expr(str(v))

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        # Prometheus files often hold `severity: 1` or `team: 42`: label values are text
        if isinstance(v, dict):
            return {k: x if isinstance(x, str) else str(x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _kind(self) -> _PromRule:
        if (self.alert is None) == (self.record is None):
            message = "a rule needs exactly one of alert: or record:"
            raise PydanticCustomError(
                FIELD_ERROR, "{message}", {"field": "expr", "message": message}
            )
        return self


class _PromGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    interval: Seconds | None = None
    limit: int | None = None
    query_offset: Seconds | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    rules: list[_PromRule] = Field(default_factory=list)


class _RuleFile(BaseModel):
    # Other top-level sections (storage, notifications, ...) belong to the config loader.
    model_config = ConfigDict(extra="ignore")

    alerts: dict[str, dict[str, AlertRule] | None] | None = None
    recording: dict[str, dict[str, RecordingRule] | None] | None = None
    groups: list[_PromGroup] | None = None


class RuleSet(BaseModel):
    """Every alert and recording rule of a file, in file order."""

    model_config = ConfigDict(frozen=True)

    alerts: tuple[AlertRule, ...] = ()
    recording: tuple[RecordingRule, ...] = ()
    expr_recording: tuple[ExprRecordingRule, ...] = ()


def _known_keys(loc: Sequence[Any]) -> Sequence[str]:
    if loc and loc[0] == "groups":
        model: type[BaseModel] = _PromRule if "rules" in loc else _PromGroup
        return [f.alias or n for n, f in model.model_fields.items()]
    model = AlertRule if loc and loc[0] == "alerts" else RecordingRule
    return list(model.model_fields)


def _prometheus_rules(
    doc: YamlDocument, groups: Sequence[_PromGroup]
) -> tuple[list[AlertRule], list[ExprRecordingRule]]:
    alerts: list[AlertRule] = []
    records: list[ExprRecordingRule] = []
    for gi, group in enumerate(groups):
        for ri, rule in enumerate(group.rules):
            where = ("groups", gi, "rules", ri)
            labels = {**group.labels, **rule.labels}
            try:
                if rule.record is not None:
                    rec = ExprRecordingRule(record=rule.record, expr=str(rule.expr), labels=labels)
                    rec._name, rec._group = f"{group.name}.{rule.record}", group.name
                    records.append(rec)
                    continue
                fields: dict[str, Any] = {
                    "expr": rule.expr,
                    "duration_seconds": rule.for_,
                    "keep_firing_seconds": rule.keep_firing_for,
                    "labels": labels,
                    "annotations": rule.annotations,
                }
                if labels.get("severity") in {s.value for s in Severity}:
                    fields["severity"] = labels["severity"]
                name = f"{group.name}.{rule.alert}"
                if any(a.name == name for a in alerts):
                    raise ConfigError(
                        f"alert {rule.alert!r} appears twice in group {group.name!r}; "
                        "metricskit needs distinct alert names within a group"
                    )
                created = AlertRule.create(name, **fields)
                created._group, created._alert = group.name, rule.alert
                alerts.append(created)
            except ValidationError as exc:
                problems = "; ".join(
                    describe_pydantic_error(e, list(ExprRecordingRule.model_fields))
                    for e in exc.errors()[:3]
                )
                raise doc.error(problems, where) from None
            except ConfigError as exc:
                raise doc.error(exc.message, where) from None
    return alerts, records


def parse_rules(doc: YamlDocument) -> RuleSet:
    """Validate a loaded document's ``alerts`` and ``recording`` sections into a RuleSet."""
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise doc.error(f"a rule file must be a mapping, not {type(data).__name__}")
    try:
        parsed = _RuleFile.model_validate(data)
    except ValidationError as exc:
        raise pydantic_config_error(doc, exc, _known_keys) from None
    alerts: list[AlertRule] = []
    for group, rules in (parsed.alerts or {}).items():
        for name, rule in (rules or {}).items():
            rule._name, rule._group = f"{group}.{name}", group
            alerts.append(rule)
    recording: list[RecordingRule] = []
    for group, recs in (parsed.recording or {}).items():
        for name, rec in (recs or {}).items():
            rec._name = f"{group}.{name}"
            try:
                rec.derivation()
            except ConfigError as exc:
                raise doc.error(exc.message, ("recording", group, name)) from None
            recording.append(rec)
    prom_alerts, expr_recording = _prometheus_rules(doc, parsed.groups or ())
    alerts.extend(prom_alerts)
    return RuleSet(
        alerts=tuple(alerts), recording=tuple(recording), expr_recording=tuple(expr_recording)
    )


def load_rules(source: str | YamlDocument, *, text: bool = False) -> RuleSet:
    """Load rules from a YAML file path (or, with ``text=True``, from YAML text)."""
    if isinstance(source, YamlDocument):
        return parse_rules(source)
    return parse_rules(load_yaml_text(source) if text else load_yaml(source))
