"""The dashboard's chart sections: one figure per configured metric, drawn from frames.

A request histogram gets three charts (throughput, error rate and latency percentiles);
any other metric one, titled from the catalog. Every chart of the page shares one time
axis, so charts line up when read down the page. The drawing itself is
:mod:`metricskit.report._svg_chart`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from metricskit.catalog import MetricKind, describe
from metricskit.report._html_format import card, esc, section_title, short_unit
from metricskit.report._svg_chart import Line, render_chart

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["chart_sections"]

_REQUEST_PARTS = (
    ("throughput_rps", "Request throughput", "req/s", ("throughput_rps",), 1.0),
    ("error_rate", "Request error rate", "%", ("error_rate",), 100.0),
    ("latency", "Request latency percentiles", "s", ("p50", "p95", "p99"), 1.0),
)


@dataclass(frozen=True)
class _ChartSpec:
    title: str
    metric: str
    unit: str
    lines: list[Line]


def _lines(frame: pd.DataFrame, scale: float = 1.0) -> list[Line]:
    import pandas as pd

    out = []
    for label, part in frame.groupby("series", sort=False):
        ts = pd.DatetimeIndex(part["timestamp"]).as_unit("ns").asi8
        values = part["value"].to_numpy(dtype=np.float64) * scale
        order = np.argsort(ts, kind="stable")
        out.append(Line(str(label), ts[order], values[order]))
    return out


def _base_metric(metric: str) -> str:
    """``http.request.duration_seconds:p95`` -> the histogram it was derived from."""
    base = metric.rsplit(":", 1)[0]
    return base if base != metric and describe(base).kind is MetricKind.HISTOGRAM else metric


def _chart_specs(frame: pd.DataFrame, metrics: Sequence[str] | None) -> Iterator[_ChartSpec]:
    by_metric = (
        {str(m): part for m, part in frame.groupby("metric", sort=False)} if len(frame) else {}
    )
    names = metrics if metrics is not None else list(dict.fromkeys(map(_base_metric, by_metric)))
    for name in names:
        info = describe(name)
        if info.kind is MetricKind.HISTOGRAM:
            for key, title, unit, parts, scale in _REQUEST_PARTS:
                lines = [
                    line
                    for part in parts
                    if f"{name}:{part}" in by_metric
                    for line in _lines(by_metric[f"{name}:{part}"], scale)
                ]
                yield _ChartSpec(title, f"{name}:{key}", unit, lines)
        else:
            part = by_metric.get(name)
            lines = _lines(part) if part is not None else []
            yield _ChartSpec(info.description or name, name, short_unit(name), lines)


def _time_range(sections: Mapping[str, pd.DataFrame]) -> tuple[int, int] | None:
    """One time axis for every chart, so charts line up when read down the page."""
    import pandas as pd

    lo, hi = None, None
    for frame in sections.values():
        if len(frame):
            ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
            lo = int(ts.min()) if lo is None else min(lo, int(ts.min()))
            hi = int(ts.max()) if hi is None else max(hi, int(ts.max()))
    return None if lo is None or hi is None else (lo, hi)


def chart_sections(
    sections: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, Sequence[str]] | None,
    titles: Mapping[str, str],
) -> str:
    """A card of charts per dashboard section, titled from ``titles`` or its key."""
    span = _time_range(sections)
    out = []
    for section, frame in sections.items():
        configured = None if metrics is None else metrics.get(section)
        figures = []
        for spec in _chart_specs(frame, configured):
            unit = f" ({esc(spec.unit)})" if spec.unit else ""
            figures.append(
                f'<figure class="chart"><figcaption>{esc(spec.title)}{unit}'
                f"<small>{esc(spec.metric)}</small></figcaption>"
                f"{render_chart(spec.lines, span, spec.unit)}</figure>"
            )
        body = (
            f'<p class="note">Times are UTC.</p><div class="charts">{"".join(figures)}</div>'
            if figures
            else ""
        )
        out.append(
            card(
                f"dashboard-{section}",
                titles.get(section) or section_title(section),
                body or '<p class="empty">no data</p>',
                "wide dashboard",
            )
        )
    return "".join(out)
