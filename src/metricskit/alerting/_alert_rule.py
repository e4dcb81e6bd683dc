"""One alert rule: the seed's ``metric``/``threshold`` rule or a PromQL ``expr:`` rule.

Both are :class:`AlertRule`: a metric rule compares ``metric`` (or a statistic of it
over ``window``) with ``threshold``; an expression rule (``expr`` given) alerts on every
series its PromQL expression returns, as a Prometheus alerting rule does, and has none of
the metric rule's keys (``metric``, ``threshold``, ``stat``, ...). The YAML file format is
in :mod:`metricskit.alerting.rules_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from metricskit._time import NS_PER_S
from metricskit._validation import FIELD_ERROR, Number, describe_pydantic_error
from metricskit.alerting._rule_fields import (
    EXPR_METRIC,
    PERCENTILE,
    STATS,
    Seconds,
    check_expr,
    check_summary,
    one_of,
    parse_expr,
)
from metricskit.alerting._templates import check_template
from metricskit.alerting.events import Severity
from metricskit.errors import ConfigError
from metricskit.model import Tags, validate_name, validate_tags

if TYPE_CHECKING:
    from metricskit.query._plan import Node

__all__ = ["AlertRule", "RuleSource"]


@dataclass(frozen=True)
class RuleSource:
    """Where a rule of a Prometheus ``groups:`` file was written, and its group's settings,
    as ``/api/v1/rules`` reports them."""

    file: str
    """The file's path as it was loaded (Prometheus reports its rule file's path)."""
    group_index: int
    rule_index: int
    """The rule's place in its group: Prometheus lists a group's rules in file order."""
    interval: float | None = None
    """The group's ``interval`` (seconds); ``None``: the engine's."""
    limit: int = 0
    """The group's ``limit`` (0: none)."""


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
"""Keys of a metric rule that an expression rule must not have."""


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
    _source: RuleSource | None = PrivateAttr(default=None)

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

    @property
    def source(self) -> RuleSource | None:
        """Where a rule of a Prometheus ``groups:`` file was written; ``None`` for others."""
        return self._source

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
        match = PERCENTILE.fullmatch(self.stat)
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
        if v in STATS or PERCENTILE.fullmatch(v):
            return v
        raise one_of("stat", v, STATS, " or pNN")

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
        return check_summary(v)

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
