"""Recording rules: the seed-style derivation (``recording:``) and Prometheus' ``record:``."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from metricskit._time import parse_duration
from metricskit._validation import Number
from metricskit.alerting._alert_rule import RuleSource
from metricskit.alerting._rule_fields import check_expr, one_of, parse_expr
from metricskit.collect.derive import FUNCTIONS, Derivation
from metricskit.model import validate_name, validate_tags

if TYPE_CHECKING:
    from metricskit.query._plan import Node

__all__ = ["ExprRecordingRule", "RecordingRule"]


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
            raise one_of("function", v, FUNCTIONS)
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
    _source: RuleSource | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        """``"group.record"``."""
        return self._name

    @property
    def source(self) -> RuleSource | None:
        """Where the rule was written (see :class:`~metricskit.alerting._alert_rule.RuleSource`)."""
        return self._source

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
