"""Parse PromQL with ``promql-parser`` and turn its tree into the plan the evaluator runs.

The plan is a tree of small frozen dataclasses (typed, cheap to walk), checked once here:
a function, aggregation or modifier the evaluator does not support raises
:class:`~metricskit.errors.QueryError` naming it and its position in the expression,
before any data is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Union

import promql_parser as pp

from metricskit.errors import QueryError

__all__ = [
    "Aggregate",
    "At",
    "Binary",
    "Call",
    "Matcher",
    "MatrixSelector",
    "Negate",
    "Node",
    "Number",
    "String",
    "Subquery",
    "VectorSelector",
    "plan",
]

_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``label op value`` with op one of ``=``, ``!=``, ``=~``, ``!~``."""

    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None

    def matches(self, actual: str) -> bool:
        """True if a label value (``""`` when absent) satisfies the matcher."""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class At:
    """An ``@`` modifier: a fixed time (ns), or the query's ``start()``/``end()``."""

    kind: str  # "time", "start" or "end"
    time_ns: int = 0


@dataclass(frozen=True)
class Number:
    """A number literal."""

    value: float


@dataclass(frozen=True)
class String:
    """A string literal."""

    value: str


@dataclass(frozen=True)
class VectorSelector:
    """``name{matchers} offset o @ t``; ``matchers`` include the one on ``__name__``."""

    text: str
    matchers: tuple[Matcher, ...]
    offset_ns: int
    at: At | None


@dataclass(frozen=True)
class MatrixSelector:
    """``selector[range]``."""

    selector: VectorSelector
    range_ns: int


@dataclass(frozen=True)
class Subquery:
    """``expr[range:step] offset o @ t`` (``step_ns`` None: the default interval)."""

    expr: Node
    range_ns: int
    step_ns: int | None
    offset_ns: int
    at: At | None


@dataclass(frozen=True)
class Call:
    """A function call."""

    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Aggregate:
    """``op [by|without (labels)] ([param,] expr)``; ``grouping`` None: no clause."""

    op: str
    expr: Node
    param: Node | None
    without: bool
    grouping: tuple[str, ...]


@dataclass(frozen=True)
class Binary:
    """``lhs op [bool] [on|ignoring (labels)] [group_left|group_right (labels)] rhs``."""

    op: str
    lhs: Node
    rhs: Node
    return_bool: bool
    card: str  # "one-to-one", "many-to-one", "one-to-many", "many-to-many"
    on: bool
    matching: tuple[str, ...]
    include: tuple[str, ...]


@dataclass(frozen=True)
class Negate:
    """Unary minus."""

    expr: Node


Node = Union[  # noqa: UP007 - a runtime alias, usable in isinstance-free annotations
    Number, String, VectorSelector, MatrixSelector, Subquery, Call, Aggregate, Binary, Negate
]

AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
     "count_values", "group"}
)  # fmt: skip
BINARY_OPS = frozenset(
    {"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless",
     "atan2"}
)  # fmt: skip


def _ns(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    # timedelta keeps microseconds; PromQL durations are whole milliseconds
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


def _position(text: str, needle: str) -> int:
    found = text.find(needle)
    return found if found >= 0 else 0


def unsupported(text: str, what: str, needle: str) -> QueryError:
    """The QueryError for an unsupported construct, with its position (0-based column)."""
    pos = _position(text, needle)
    return QueryError(f"unsupported in PromQL query: {what} at position {pos} of {text!r}")


class _Planner:
    def __init__(self, text: str, functions: frozenset[str]) -> None:
        self.text = text
        self.functions = functions

    def node(self, expr: pp.Expr) -> Node:
        if isinstance(expr, pp.ParenExpr):
            return self.node(expr.expr)
        if isinstance(expr, pp.NumberLiteral):
            return Number(float(expr.val))
        if isinstance(expr, pp.StringLiteral):
            return String(str(expr.val))
        if isinstance(expr, pp.VectorSelector):
            return self.selector(expr)
        if isinstance(expr, pp.MatrixSelector):
            return MatrixSelector(self.selector(expr.vector_selector), _ns(expr.range))
        if isinstance(expr, pp.SubqueryExpr):
            step = _ns(expr.step) if expr.step is not None else None
            return Subquery(
                self.node(expr.expr), _ns(expr.range), step, _ns(expr.offset), self.at(expr.at)
            )
        if isinstance(expr, pp.UnaryExpr):
            return Negate(self.node(expr.expr))
        if isinstance(expr, pp.Call):
            name = str(expr.func.name)
            if name not in self.functions:
                raise unsupported(self.text, f"function {name}()", f"{name}(")
            return Call(name, tuple(self.node(a) for a in expr.args))
        if isinstance(expr, pp.AggregateExpr):
            return self.aggregate(expr)
        if isinstance(expr, pp.BinaryExpr):
            return self.binary(expr)
        raise unsupported(self.text, f"expression {expr}", str(expr))

    def selector(self, vs: pp.VectorSelector) -> VectorSelector:
        text = str(vs)
        if vs.matchers.or_matchers:
            raise unsupported(self.text, "'or' inside label matchers", " or ")
        matchers = [self.matcher(m) for m in vs.matchers.matchers]
        if vs.name is not None:
            matchers.insert(0, Matcher("__name__", "=", str(vs.name), None))
        if all(m.matches("") for m in matchers):
            raise QueryError(f"vector selector {text} must contain at least one non-empty matcher")
        return VectorSelector(text, tuple(matchers), _ns(vs.offset), self.at(vs.at))

    def matcher(self, m: pp.Matcher) -> Matcher:
        op = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}[str(m.op).split(".")[-1]]
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(str(m.value), re.DOTALL)
            except re.error as exc:
                raise QueryError(f"invalid regular expression {m.value!r}: {exc}") from exc
        return Matcher(str(m.name), op, str(m.value), regex)

    def at(self, at: pp.AtModifier | None) -> At | None:
        if at is None:
            return None
        kind = str(at.type).split(".")[-1]
        if kind == "Start":
            return At("start")
        if kind == "End":
            return At("end")
        seconds = at.at.timestamp() if at.at is not None else math.nan
        if not math.isfinite(seconds):
            raise QueryError(f"invalid @ time in {self.text!r}")
        return At("time", round(seconds * 1000) * _NS_PER_MS)

    def aggregate(self, expr: pp.AggregateExpr) -> Aggregate:
        op = str(expr.op)
        if op not in AGGREGATIONS:
            raise unsupported(self.text, f"aggregation {op}", op)
        mod = expr.modifier
        without = mod is not None and str(mod.type).endswith("Without")
        grouping = tuple(str(x) for x in mod.labels) if mod is not None else ()
        param = self.node(expr.param) if expr.param is not None else None
        return Aggregate(op, self.node(expr.expr), param, without, grouping)

    def binary(self, expr: pp.BinaryExpr) -> Binary:
        op = str(expr.op)
        if op not in BINARY_OPS:
            raise unsupported(self.text, f"binary operator {op}", f" {op} ")
        mod = expr.modifier
        card, on, return_bool = "one-to-one", False, False
        matching: tuple[str, ...] = ()
        include: tuple[str, ...] = ()
        if mod is not None:
            fill = mod.fill_values
            if fill is not None and (fill.lhs is not None or fill.rhs is not None):
                raise unsupported(self.text, "fill modifier (Prometheus 3 experimental)", "fill")
            card = {
                "OneToOne": "one-to-one",
                "ManyToOne": "many-to-one",
                "OneToMany": "one-to-many",
                "ManyToMany": "many-to-many",
            }[str(mod.card).split(".")[-1]]
            if mod.matching is not None:
                on = str(mod.matching.type).endswith("Include")
                matching = tuple(str(x) for x in mod.matching.labels)
            include = tuple(str(x) for x in (mod.group_labels or ()))
            return_bool = bool(mod.return_bool)
        if op in ("and", "or", "unless"):
            card = "many-to-many"
        return Binary(
            op, self.node(expr.lhs), self.node(expr.rhs), return_bool, card, on, matching, include
        )


def plan(text: str, functions: frozenset[str]) -> Node:
    """Parse ``text`` and check it only uses ``functions`` and supported constructs."""
    if not isinstance(text, str):
        raise QueryError(f"a PromQL expression must be a str, not {type(text).__name__}")
    try:
        tree = pp.parse(text)
    except (ValueError, RuntimeError) as exc:
        raise QueryError(f"cannot parse PromQL {text!r}: {exc}") from exc
    return _Planner(text, functions).node(tree)
