"""Formatting shared by the dashboard's parts: escaping, figures, badges, tables, cards.

Every string from data reaches the page through :func:`esc`; markup built here from
escaped parts is an :class:`Html`, which :func:`esc` passes through unchanged.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from metricskit.catalog import MetricKind, describe

__all__ = [
    "STATUS_CLASS",
    "Html",
    "badge",
    "card",
    "count",
    "esc",
    "num",
    "section_title",
    "short_unit",
    "table",
    "tag_text",
    "when",
]

STATUS_CLASS = {"healthy": "ok", "warning": "warn", "critical": "crit"}
_SEVERITY_CLASS = {
    "info": "info",
    "warning": "warn",
    "critical": "crit",
    "up": "ok",
    "down": "crit",
}
_SHORT_UNITS = {
    "percent": "%",
    "gigabytes": "GB",
    "milliseconds": "ms",
    "seconds": "s",
    "bytes": "B",
}


class Html(str):
    """Markup built here from escaped parts; :func:`esc` passes it through unchanged."""


def esc(value: Any) -> str:
    """Every string from data goes through here on its way into the page."""
    if isinstance(value, Html):
        return value
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, unit: str = "", scale: float = 1.0) -> str:
    """A figure for a table cell; ``—`` for missing or NaN."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else esc(value)
    if not math.isfinite(value):
        return "—"
    v = value * scale
    if isinstance(value, int) and scale == 1.0:
        text = f"{v:,}"
    elif abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif abs(v) >= 100:
        text = f"{v:.1f}"
    elif abs(v) >= 1 or v == 0:
        text = f"{v:.2f}"
    else:
        text = f"{v:.3g}"
    return f"{text}\u2009{esc(unit)}" if unit else text


def count(value: Any) -> str:
    """A count, which may arrive as a float from JSON or numpy."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{int(value):,}"
    return num(value)


def when(iso: Any) -> str:
    """An ISO timestamp from the report as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if not isinstance(iso, str):
        return "—"
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:
        return esc(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def tag_text(tags: Any) -> str:
    """``k=v, k=v`` in key order; ``—`` for no tags."""
    if not isinstance(tags, Mapping) or not tags:
        return "—"
    return esc(", ".join(f"{k}={v}" for k, v in sorted(tags.items())))


def badge(text: Any) -> Html:
    """A coloured label for a severity or a check's up/down."""
    cls = _SEVERITY_CLASS.get(str(text), "info")
    return Html(f'<span class="badge {cls}">{esc(text)}</span>')


def short_unit(name: str) -> str:
    """The catalog's unit of ``name`` as shown on the page; a counter is charted per second."""
    info = describe(name)
    unit = _SHORT_UNITS.get(info.unit, info.unit)
    if info.kind is MetricKind.COUNTER:
        return f"{unit}/s" if unit else "per second"
    return unit


def section_title(section: str) -> str:
    """``system_overview`` -> ``System Overview``; capitals already there are kept."""
    return " ".join(w[:1].upper() + w[1:] for w in section.replace("_", " ").split()) or section


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    """A table of escaped cells, or the ``empty`` sentence when there are no rows."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card(anchor: str, title: str, body: str, extra: str = "") -> str:
    """One titled section of the page; ``anchor`` is its id for the navigation links."""
    return f'<section id="{esc(anchor)}" class="card {extra}"><h2>{esc(title)}</h2>{body}</section>'
