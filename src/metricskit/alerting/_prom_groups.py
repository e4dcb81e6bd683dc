"""Prometheus rule files: ``groups:`` ... ``rules:`` loaded unchanged.

::

    groups:
      - name: api
        labels: {team: web}                      # added to every rule of the group
        rules:
          - record: job:errors:sum
            expr: sum by (job) (errors)
          - alert: ErrorsHigh                    # the rule is named "api.ErrorsHigh"
            expr: job:errors:sum > 5
            for: 5m
            keep_firing_for: 2m
            labels: {severity: critical, where: "{{ $labels.job }}"}
            annotations: {summary: "{{ $value }} errors"}

Each ``alert:`` becomes an expression :class:`~metricskit.alerting.rules_model.AlertRule`
(a ``severity`` label that names a severity sets the rule's), each ``record:`` an
:class:`~metricskit.alerting.rules_model.ExprRecordingRule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from metricskit._validation import FIELD_ERROR, describe_pydantic_error
from metricskit._yaml import YamlDocument
from metricskit.alerting._alert_rule import AlertRule, RuleSource
from metricskit.alerting._recording_rules import ExprRecordingRule
from metricskit.alerting._rule_fields import Seconds, check_expr
from metricskit.alerting.events import EVERY_ALERTMANAGER, Severity
from metricskit.errors import ConfigError

__all__ = ["PromGroup", "PromRule", "prometheus_rules"]


class PromRule(BaseModel):
    """One entry of a Prometheus rule group, keys as Prometheus spells them."""

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
    def _kind(self) -> PromRule:
        if (self.alert is None) == (self.record is None):
            message = "a rule needs exactly one of alert: or record:"
            raise PydanticCustomError(
                FIELD_ERROR, "{message}", {"field": "expr", "message": message}
            )
        return self


class PromGroup(BaseModel):
    """One group of a Prometheus rule file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    interval: Seconds | None = None
    limit: int | None = None
    query_offset: Seconds | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    rules: list[PromRule] = Field(default_factory=list)


def prometheus_rules(
    doc: YamlDocument, groups: Sequence[PromGroup]
) -> tuple[list[AlertRule], list[ExprRecordingRule]]:
    """The alert and recording rules of ``groups``, named ``"group.alert"``; errors at
    their line of ``doc``."""
    alerts: list[AlertRule] = []
    records: list[ExprRecordingRule] = []
    for gi, group in enumerate(groups):
        source = RuleSource(doc.path or "", gi, 0, group.interval, group.limit or 0)
        for ri, rule in enumerate(group.rules):
            where = ("groups", gi, "rules", ri)
            labels = {**group.labels, **rule.labels}
            try:
                if rule.record is not None:
                    rec = ExprRecordingRule(record=rule.record, expr=str(rule.expr), labels=labels)
                    rec._name, rec._group = f"{group.name}.{rule.record}", group.name
                    rec._source = replace(source, rule_index=ri)
                    records.append(rec)
                    continue
                fields: dict[str, Any] = {
                    "expr": rule.expr,
                    "duration_seconds": rule.for_,
                    "keep_firing_seconds": rule.keep_firing_for,
                    "labels": labels,
                    "annotations": rule.annotations,
                    "channels": ("log", EVERY_ALERTMANAGER),
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
                created._source = replace(source, rule_index=ri)
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
