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
A Prometheus rule file (``groups:`` ... ``rules:``) loads unchanged beside them
(:mod:`metricskit.alerting._prom_groups`). Sections other than ``alerts``, ``recording``
and ``groups`` belong to the rest of the config and are ignored here.

The models live in private modules by responsibility and are imported from here:
:class:`AlertRule` (``_alert_rule``), :class:`RecordingRule` and
:class:`ExprRecordingRule` (``_recording_rules``), the fields they share
(``_rule_fields``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from metricskit._validation import pydantic_config_error
from metricskit._yaml import YamlDocument, load_yaml, load_yaml_text
from metricskit.alerting._alert_rule import AlertRule
from metricskit.alerting._prom_groups import PromGroup, PromRule, prometheus_rules
from metricskit.alerting._recording_rules import ExprRecordingRule, RecordingRule
from metricskit.alerting._rule_fields import (
    EXPR_METRIC,
    OPERATOR_SYMBOLS,
    OPERATORS,
    STATS,
    TEMPLATE_FIELDS,
    check_expr,
    parse_expr,
)
from metricskit.errors import ConfigError

__all__ = [
    "EXPR_METRIC",
    "OPERATORS",
    "OPERATOR_SYMBOLS",
    "STATS",
    "TEMPLATE_FIELDS",
    "AlertRule",
    "ExprRecordingRule",
    "RecordingRule",
    "RuleSet",
    "check_expr",
    "load_rules",
    "parse_expr",
    "parse_rules",
]


class _RuleFile(BaseModel):
    # Other top-level sections (storage, notifications, ...) belong to the config loader.
    model_config = ConfigDict(extra="ignore")

    alerts: dict[str, dict[str, AlertRule] | None] | None = None
    recording: dict[str, dict[str, RecordingRule] | None] | None = None
    groups: list[PromGroup] | None = None


class RuleSet(BaseModel):
    """Every alert and recording rule of a file, in file order."""

    model_config = ConfigDict(frozen=True)

    alerts: tuple[AlertRule, ...] = ()
    recording: tuple[RecordingRule, ...] = ()
    expr_recording: tuple[ExprRecordingRule, ...] = ()


def _known_keys(loc: Sequence[Any]) -> Sequence[str]:
    if loc and loc[0] == "groups":
        model: type[BaseModel] = PromRule if "rules" in loc else PromGroup
        return [f.alias or n for n, f in model.model_fields.items()]
    model = AlertRule if loc and loc[0] == "alerts" else RecordingRule
    return list(model.model_fields)


def parse_rules(doc: YamlDocument) -> RuleSet:
    """Validate a loaded document's ``alerts``, ``recording`` and ``groups`` into a RuleSet."""
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
    prom_alerts, expr_recording = prometheus_rules(doc, parsed.groups or ())
    alerts.extend(prom_alerts)
    return RuleSet(
        alerts=tuple(alerts), recording=tuple(recording), expr_recording=tuple(expr_recording)
    )


def load_rules(source: str | YamlDocument, *, text: bool = False) -> RuleSet:
    """Load rules from a YAML file path (or, with ``text=True``, from YAML text)."""
    if isinstance(source, YamlDocument):
        return parse_rules(source)
    return parse_rules(load_yaml_text(source) if text else load_yaml(source))
