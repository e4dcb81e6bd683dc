"""Mapping between metricskit series keys and Prometheus label sets.

A metricskit name ``system.cpu.usage_percent`` becomes the Prometheus metric name
``system_cpu_usage_percent`` (dots are not allowed there). That is lossy
(``a.b_c`` and ``a_b.c`` collide), so every sample also carries the original name in the
label ``mk_name`` (configurable); reads map a label set back through that label, and fall
back to ``__name__`` for series written by other tools. Tags are labels as they are:
metricskit tag keys are already valid Prometheus label names and never start with ``__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from metricskit.errors import InvalidMetricError
from metricskit.model import SeriesKey

__all__ = [
    "DEFAULT_NAME_LABEL",
    "key_from_labels",
    "label_matchers",
    "labels_for",
    "promql_selector",
    "to_prom_name",
]

DEFAULT_NAME_LABEL = "mk_name"
"""The label holding the exact metricskit name (``mk_name="system.cpu.usage_percent"``)."""


def to_prom_name(name: str) -> str:
    """``system.cpu.usage_percent`` -> ``system_cpu_usage_percent``."""
    return name.replace(".", "_")


def labels_for(key: SeriesKey, name_label: str = DEFAULT_NAME_LABEL) -> list[tuple[str, str]]:
    """The label pairs a series is written with, sorted by label name as remote write asks."""
    if name_label in key.tags:
        raise InvalidMetricError(
            f"tag {name_label!r} on {key} is reserved by the remote-write backend for the "
            "metricskit name; rename the tag or open the store with another name_label="
        )
    pairs = [("__name__", to_prom_name(key.name)), (name_label, key.name), *key.tags.items_tuple]
    pairs.sort()
    return pairs


def key_from_labels(
    labels: Mapping[str, str], name_label: str = DEFAULT_NAME_LABEL
) -> SeriesKey | None:
    """The metricskit key of a label set, or ``None`` if it cannot be one.

    A series written by another tool (no ``mk_name``) keeps its Prometheus name; one whose
    name or labels metricskit cannot represent (``:foo``, a ``__meta`` label) is ``None``.
    """
    name = labels.get(name_label) or labels.get("__name__")
    if not name:
        return None
    tags = {k: v for k, v in labels.items() if k != "__name__" and k != name_label}
    try:
        return SeriesKey.of(name, tags)
    except InvalidMetricError:
        return None


def _quote(value: str) -> str:
    # PromQL string literals take Go escapes; these four are all a label value can need.
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def label_matchers(labels: Mapping[str, str], absent: Iterable[str] = ()) -> str:
    """A PromQL selector for exactly these label values (``__name__`` included), and
    ``label=""`` for each name in ``absent``."""
    parts = [f"{k}={_quote(v)}" for k, v in sorted(labels.items())]
    parts.extend(f'{k}=""' for k in sorted(absent))
    return "{" + ", ".join(parts) + "}"


def promql_selector(
    name: str | None,
    tags: Iterable[tuple[str, str]] = (),
    absent: Iterable[str] = (),
) -> str:
    """A PromQL series selector: ``{__name__="a_b", t="v", other=""}``.

    ``absent`` lists label names the series must not carry (``label=""`` in PromQL), which
    is how an exact match excludes series with more labels. A selector without a name
    matches every metric (``__name__=~".+"``), as PromQL forbids an all-empty selector.
    """
    if name is None:
        parts = ['__name__=~".+"']
    else:
        parts = [f"__name__={_quote(to_prom_name(name))}"]
    parts.extend(f"{k}={_quote(v)}" for k, v in tags)
    parts.extend(f'{k}=""' for k in absent)
    return "{" + ", ".join(parts) + "}"
