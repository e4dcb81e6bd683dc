"""The subset of Prometheus' alert templating that expression rules support.

Inside ``{{ ... }}`` a label or annotation value may use exactly these actions:

=================================  =============================================
``{{ $labels.NAME }}``             the result series' label (empty if it has none)
``{{ .Labels.NAME }}``             the same
``{{ $value }}``                   the sample value, printed as Go prints a float
``{{ .Value }}``                   the same
``{{ $value | humanize }}``        the value with an SI prefix (``1.5k``, ``250m``)
``{{ humanize $value }}``          the same
``{{ $value | humanizePercentage }}``  a ratio in percent, 4 digits (``12.35%``)
``{{ $value | humanizeDuration }}``    seconds as ``1m 5s``, ``2.5s``, ``250ms``
``{{ $externalLabels.NAME }}``     empty: metricskit has no external labels
``{{ .ExternalLabels.NAME }}``     the same
``{{ $externalURL }}``             empty: metricskit has no external URL
``{{ .ExternalURL }}``             the same
=================================  =============================================

The ``humanize*`` functions also take the form ``{{ humanizeDuration $value }}``. A
missing label is the empty string, as Prometheus' ``missingkey=zero`` makes it.

Anything else between ``{{`` and ``}}`` is rejected when the rule is loaded (a
:class:`~metricskit.errors.ConfigError` with the line), never passed through as text.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping

__all__ = [
    "check_template",
    "expand",
    "go_float",
    "humanize",
    "humanize_duration",
    "humanize_percentage",
]

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_LABEL = r"(?:\$labels|\.Labels)\.([A-Za-z_][A-Za-z0-9_]*)"
_VALUE = r"(?:\$value|\.Value)"
# Prometheus fills these from its command line and global config; metricskit has neither,
# so they expand to what Prometheus gives without them: an empty map, an empty string
_EXTERNAL = (
    r"(?:\$externalLabels|\.ExternalLabels)\.[A-Za-z_][A-Za-z0-9_]*|\$externalURL|\.ExternalURL"
)
_FORMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_LABEL), "label"),
    (re.compile(_EXTERNAL), "external"),
    (re.compile(_VALUE), "value"),
    (re.compile(rf"{_VALUE}\s*\|\s*(humanize[A-Za-z]*)"), "function"),
    (re.compile(rf"(humanize[A-Za-z]*)\s+{_VALUE}"), "function"),
]


def _action(inner: str) -> tuple[str, str] | None:
    for pattern, kind in _FORMS:
        match = pattern.fullmatch(inner)
        if match:
            name = match.group(1) if match.groups() else ""
            if kind == "function" and name not in _FUNCTIONS:
                return None
            return kind, name
    return None


def check_template(text: str) -> str:
    """Return ``text`` if every ``{{ }}`` action is supported, else raise ValueError."""
    for match in _ACTION.finditer(text):
        if _action(match.group(1)) is None:
            raise ValueError(
                f"unsupported template action {match.group(0)!r}; supported: "
                "{{ $labels.NAME }}, {{ $value }}, {{ $value | humanize }}, humanizePercentage, "
                "humanizeDuration, {{ $externalLabels.NAME }}, {{ $externalURL }} (docs/rules.md)"
            )
    rest = _ACTION.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"unbalanced '{{{{' or '}}}}' in template {text!r}")
    return text


def go_float(v: float) -> str:
    """``v`` as Go's ``%v`` prints a float64 (shortest digits, exponent from 1e6)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    text = repr(v)
    mantissa, _, exp_text = text.partition("e")
    digits = mantissa.replace("-", "").replace(".", "").lstrip("0") or "0"
    exp = int(exp_text) if exp_text else len(mantissa.lstrip("-").split(".")[0].lstrip("0")) - 1
    if not exp_text and abs(v) < 1:
        frac = mantissa.lstrip("-").split(".")[1]
        exp = -(len(frac) - len(frac.lstrip("0")) + 1)
    digits = digits.rstrip("0") or "0"
    sign = "-" if v < 0 else ""
    if exp < -4 or exp >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return f"{sign}{digits}{'0' * (exp + 1 - len(digits))}"
    return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def humanize(v: float) -> str:
    """Prometheus' ``humanize``: four significant digits and an SI prefix."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return f"{_g4(v)}{prefix}"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}"


def humanize_percentage(v: float) -> str:
    """Prometheus' ``humanizePercentage``: a ratio in percent, four significant digits."""
    return f"{_g4(v * 100)}%"


def humanize_duration(v: float) -> str:
    """Prometheus' ``humanizeDuration``: seconds as days/hours/minutes/seconds, or with
    an SI prefix below one second."""
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return f"{_g4(v)}s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        whole = int(abs(v))
        days, hours = whole // 86_400, whole // 3_600 % 24
        minutes, seconds = whole // 60 % 60, whole % 60
        # as Prometheus: whole seconds once there are minutes, four digits before
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(abs(v))}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


_FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}


def _g4(v: float) -> str:
    # Go's %.4g: like C's, but with a two-digit exponent and +Inf/NaN spellings
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


@functools.lru_cache(maxsize=4096)
def _pieces(text: str) -> tuple[tuple[str, str, str], ...]:
    """``text`` as (literal, action kind, name) pieces, parsed once per template: an
    expression rule expands its templates for every result series at every evaluation."""
    pieces, at = [], 0
    for match in _ACTION.finditer(text):
        found = _action(match.group(1))
        if found is None:  # check_template ran at load; keep the text rather than fail
            continue
        pieces.append((text[at : match.start()], *found))
        at = match.end()
    pieces.append((text[at:], "", ""))
    return tuple(pieces)


def expand(text: str, labels: Mapping[str, str], value: float) -> str:
    """Fill the actions of a checked template with ``labels`` and ``value``."""
    out = []
    for literal, kind, name in _pieces(text):
        out.append(literal)
        if kind == "label":
            out.append(labels.get(name, ""))
        elif kind == "value":
            out.append(go_float(value))
        elif kind == "function":
            out.append(_FUNCTIONS[name](value))
        # "external": empty; "": the text after the last action
    return "".join(out)
