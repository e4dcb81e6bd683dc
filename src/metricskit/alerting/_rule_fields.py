"""What the rule models share: operators, statistics, durations, PromQL and summary checks."""

from __future__ import annotations

import difflib
import operator as _op
import re
import string
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from metricskit._validation import Seconds
from metricskit.errors import QueryError

if TYPE_CHECKING:
    from metricskit.query._plan import Node

__all__ = [
    "EXPR_METRIC",
    "OPERATORS",
    "OPERATOR_SYMBOLS",
    "PERCENTILE",
    "STATS",
    "TEMPLATE_FIELDS",
    "Seconds",
    "check_expr",
    "check_summary",
    "one_of",
    "parse_expr",
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
PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")
"""A percentile stat (``p95``); group 1 is the percent."""

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


def one_of(kind: str, value: str, choices: Sequence[str], extra: str = "") -> ValueError:
    """The error for an unknown ``kind`` named ``value``, with the closest choice."""
    hint = difflib.get_close_matches(value, choices, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ValueError(f"unknown {kind} {value!r}{did}; use one of {', '.join(choices)}{extra}")


def check_summary(text: str | None) -> str | None:
    """Return a seed rule's ``summary``/``description`` if its placeholders are known."""
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
