"""Time-series line charts as inline SVG, for the HTML dashboard.

Drawn in Python so the page needs no script to display: one ``<polyline>`` per unbroken
run of a series (a gap in the data ends a run; a lone point between gaps becomes a dot),
a few "nice" value ticks (1, 2, 2.5 or 5 times a power of ten), time ticks on round UTC
boundaries, and an HTML legend. Every label is escaped; colours come from a fixed palette,
never from data.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metricskit._time import NS_PER_S

__all__ = ["MAX_POINTS", "PALETTE", "Line", "downsample", "mark_gaps", "render_chart"]

MAX_POINTS = 600
"""Series longer than this are thinned before drawing (about one point per pixel)."""

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
    "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
)  # fmt: skip
"""Series colours in legend order (Tableau 10); the eleventh series reuses the first."""

_W, _H = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 22, 10, 26  # room for a time label at either end
_TIME_STEPS_S = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 2592000,
)  # fmt: skip
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


@dataclass(frozen=True)
class Line:
    """One series of a chart: its label, int64 ns timestamps (sorted) and float values."""

    label: str
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def downsample(line: Line, max_points: int = MAX_POINTS) -> Line:
    """At most ``max_points`` points: each bucket's minimum, maximum and gap, in time order.

    ``line`` comes from :func:`mark_gaps`, so a NaN is a real gap: a bucket holding one
    keeps it (between its minimum and maximum, as it fell), so the line still breaks.
    """
    n = len(line.values)
    if n <= max_points:
        return line
    buckets = max(max_points // 3, 1)
    starts = np.linspace(0, n, buckets + 1).astype(np.int64)[:-1]
    bucket = np.repeat(np.arange(buckets), np.diff(np.append(starts, n)))
    gap = np.isnan(line.values)
    low = np.where(gap, np.inf, line.values)
    high = np.where(gap, -np.inf, line.values)
    # the first index in each bucket where it reaches its extreme (an all-NaN bucket: its first)
    picks = [
        _first_per_bucket(low == np.minimum.reduceat(low, starts)[bucket], bucket),
        _first_per_bucket(high == np.maximum.reduceat(high, starts)[bucket], bucket),
        _first_per_bucket(gap, bucket),
    ]
    idx = np.unique(np.concatenate(picks))
    return Line(line.label, line.timestamps[idx], line.values[idx])


def _first_per_bucket(
    mask: npt.NDArray[np.bool_], bucket: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    hits = np.flatnonzero(mask)
    _, first = np.unique(bucket[hits], return_index=True)
    return hits[first].astype(np.int64)


def _nice_step(span: float, target: int) -> float:
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))


def _value_axis(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Axis bounds and ticks with a little headroom.

    Non-negative data starts at zero unless its minimum is above half its maximum, where
    zero would flatten the variation; a flat series gets a band around its value.
    """
    if lo >= 0 and (lo <= hi * 0.5 or hi - lo <= 1e-12 * hi):
        lo = 0.0
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        pad = abs(hi) * 0.1
        lo, hi = (0.0, 1.0) if pad == 0 else (lo - pad, hi + pad)
    hi += (hi - lo) * 0.04
    if lo != 0:
        lo -= (hi - lo) * 0.04
    step = _nice_step(hi - lo, 4)
    y0, y1 = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    count = round((y1 - y0) / step)
    return y0, y1, [y0 + i * step for i in range(count + 1)]


def _si(magnitude: float) -> tuple[float, str]:
    """The divisor and suffix for numbers this large (``k``, ``M``, ...), from 10 000 up."""
    if magnitude < 1e4:
        return 1.0, ""
    return next((s, x) for s, x in _SI if magnitude >= s)


def _value_label(value: float, step: float, magnitude: float) -> str:
    scale, suffix = _si(magnitude)
    scaled_step = step / scale
    decimals = 0
    while decimals < 6 and abs(round(scaled_step, decimals) - scaled_step) > scaled_step * 1e-6:
        decimals += 1
    text = f"{value / scale:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text + suffix


def _legend_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    scale, suffix = _si(abs(value))
    return f"{value / scale:.4g}{suffix}" + (f"\u2009{html.escape(unit)}" if unit else "")


def _time_ticks(t0: int, t1: int) -> tuple[list[int], str]:
    span_s = max((t1 - t0) / NS_PER_S, 1.0)
    step_s = next((s for s in _TIME_STEPS_S if span_s / s <= 6), _TIME_STEPS_S[-1])
    step = step_s * NS_PER_S
    first = -(-t0 // step) * step
    ticks = list(range(first, t1 + 1, step))
    if step_s < 60:
        fmt = "%H:%M:%S"
    elif step_s >= 86400:
        fmt = "%m-%d"
    elif span_s > 86400:
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%H:%M"
    return ticks, fmt


def mark_gaps(line: Line) -> Line:
    """The finite samples, with one NaN wherever two are over 1.5x the usual spacing apart.

    Dashboard frames come in steps that may be finer than the collection interval (30 s
    steps over 60 s samples leave every other step NaN); such NaN are not gaps, while a
    missed collection or a stopped collector is.
    """
    finite = np.isfinite(line.values)
    ts, values = line.timestamps[finite], line.values[finite]
    if len(ts) < 2:
        return Line(line.label, ts, values)
    spacing = np.diff(ts)
    at = np.flatnonzero(spacing > 1.5 * float(np.median(spacing))) + 1
    middle = ts[at - 1] + spacing[at - 1] // 2
    return Line(line.label, np.insert(ts, at, middle), np.insert(values, at, np.nan))


def _runs(values: npt.NDArray[np.float64]) -> list[npt.NDArray[np.intp]]:
    """Indices of each stretch of values between NaN."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return []
    breaks = np.flatnonzero(np.diff(finite) > 1) + 1
    return list(np.split(finite, breaks))


def _series_svg(
    line: Line, colour: str, x_of: tuple[float, float], y_of: tuple[float, float]
) -> str:
    xs = x_of[0] + line.timestamps.astype(np.float64) * x_of[1]
    ys = y_of[0] + line.values * y_of[1]
    marks = []
    for run in _runs(line.values):
        if len(run) == 1:
            i = int(run[0])
            marks.append(f'<circle cx="{xs[i]:.1f}" cy="{ys[i]:.1f}" r="2" fill="{colour}"/>')
        else:
            xy = zip(xs[run].tolist(), ys[run].tolist(), strict=True)
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            marks.append(f'<polyline stroke="{colour}" points="{pts}"/>')
    label = html.escape(line.label, quote=True)
    return f'<g class="series" data-series="{label}"><title>{label}</title>{"".join(marks)}</g>'


def _last(values: npt.NDArray[np.float64]) -> float | None:
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[-1]]) if len(finite) else None


def render_chart(lines: Sequence[Line], span: tuple[int, int] | None, unit: str = "") -> str:
    """An SVG chart of ``lines`` over ``span`` (ns) plus its legend, or a "no data" box."""
    lines = [downsample(mark_gaps(line)) for line in lines]
    finite = [line.values[np.isfinite(line.values)] for line in lines]
    if span is None or not any(len(f) for f in finite):
        return '<div class="nodata">no data</div>'
    lo = min(float(f.min()) for f in finite if len(f))
    hi = max(float(f.max()) for f in finite if len(f))
    y0, y1, yticks = _value_axis(lo, hi)
    t0, t1 = span
    if t1 <= t0:
        t0, t1 = t0 - 30 * NS_PER_S, t1 + 30 * NS_PER_S
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    # x = a + t * b and y = c + v * d, so each series maps with one multiply-add
    x_of = (_LEFT - t0 * pw / (t1 - t0), pw / (t1 - t0))
    y_of = (_TOP + ph + y0 * ph / (y1 - y0), -ph / (y1 - y0))
    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" role="img" preserveAspectRatio="xMidYMid meet">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#fff"/>',
    ]
    magnitude = max(abs(y0), abs(y1))
    for v in yticks:
        y = y_of[0] + v * y_of[1]
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{html.escape(_value_label(v, yticks[1] - yticks[0], magnitude))}</text>"
        )
    ticks, fmt = _time_ticks(t0, t1)
    for t in ticks:
        x = x_of[0] + t * x_of[1]
        when = dt.datetime.fromtimestamp(t / NS_PER_S, tz=dt.timezone.utc).strftime(fmt)
        parts.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP + ph}" y2="{_TOP + ph + 4}"/>'
            f'<text x="{x:.1f}" y="{_H - 8}" text-anchor="middle">{when}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + ph}" y2="{_TOP + ph}"/>'
    )
    legend = []
    for i, line in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(_series_svg(line, colour, x_of, y_of))
        last = _last(line.values)
        value = _legend_value(last, unit)
        legend.append(
            f'<li><i style="background:{colour}"></i>{html.escape(line.label)}'
            f' <span class="last">{value}</span></li>'
        )
    parts.append("</svg>")
    return "".join(parts) + f'<ul class="legend">{"".join(legend)}</ul>'
