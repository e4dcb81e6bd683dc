"""Request performance: summaries and issue detection over ``http.request.duration_seconds``.

:meth:`Recorder.record_request <metricskit.recorder.Recorder.record_request>` stores one
sample per request (seconds) tagged ``endpoint``, ``status`` and maybe ``method``. Here,
for a window ending at ``now``:

- :func:`summarize` gives, overall and per endpoint, the request count, throughput
  (requests/s over the window), mean, the configured percentiles (exact, numpy's linear
  method), the error rate (share of 4xx/5xx) and the requests slower than a threshold;
- :func:`detect_issues` flags the seed's performance issues (mean > 2 s, error rate > 5 %,
  p95 > 5 s by default) overall and per endpoint, and endpoint degradation: an endpoint
  whose p95 in this window exceeds its own baseline (its p95 over the previous N windows)
  by a factor. Each issue names the endpoint, the figure, its value and the threshold.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from metricskit._time import NS_PER_S, TimeLike, parse_duration, to_ns
from metricskit.model import Series
from metricskit.query import aggregate as agg

if TYPE_CHECKING:
    import pandas as pd

    from metricskit.store import Store

__all__ = [
    "OVERALL",
    "REQUEST_METRIC",
    "EndpointPerformance",
    "PerformanceIssue",
    "PerformanceSummary",
    "PerformanceThresholds",
    "detect_issues",
    "is_error_status",
    "summarize",
    "summarize_series",
]

REQUEST_METRIC = "http.request.duration_seconds"
OVERALL = "*"
"""The ``endpoint`` of the all-endpoints figures."""


@dataclass(frozen=True)
class PerformanceThresholds:
    """When request performance counts as an issue (the seed's defaults)."""

    mean_seconds: float = 2.0
    error_rate: float = 0.05
    p95_seconds: float = 5.0
    degradation_factor: float = 2.0
    """An endpoint's p95 above this many times its baseline p95 is degraded."""
    baseline_windows: int = 6
    """How many windows before the current one form an endpoint's baseline."""
    min_requests: int = 10
    """Windows (current or baseline) with fewer requests are too thin to judge degradation."""
    slow_request_seconds: float = 1.0
    """The seed's ``slow_request_threshold_ms`` (1000 ms), in seconds."""
    percentiles: tuple[float, ...] = (50, 75, 90, 95, 99)


@dataclass(frozen=True)
class EndpointPerformance:
    """Figures of one endpoint (or all of them) over one window."""

    endpoint: str
    count: int
    throughput_rps: float
    mean_seconds: float
    percentiles_seconds: dict[str, float]
    """``{"p50": ..., "p95": ...}``; NaN without requests."""
    error_rate: float
    errors: int
    slow_requests: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes ``None``)."""
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class PerformanceSummary:
    """Request performance over ``[start_ns, end_ns)``: overall and per endpoint."""

    start_ns: int
    end_ns: int
    overall: EndpointPerformance
    endpoints: dict[str, EndpointPerformance] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "window_seconds": (self.end_ns - self.start_ns) / NS_PER_S,
            "overall": self.overall.to_dict(),
            "endpoints": {k: v.to_dict() for k, v in sorted(self.endpoints.items())},
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per endpoint plus the overall row (endpoint ``"*"``)."""
        import pandas as pd

        rows = []
        for perf in (self.overall, *(self.endpoints[k] for k in sorted(self.endpoints))):
            row = {k: v for k, v in asdict(perf).items() if k != "percentiles_seconds"}
            row.update(perf.percentiles_seconds)
            rows.append(row)
        frame: pd.DataFrame = pd.DataFrame(rows).set_index("endpoint")
        return frame


@dataclass(frozen=True)
class PerformanceIssue:
    """One detected problem: which endpoint, which figure, its value and the threshold."""

    endpoint: str
    figure: str
    """``mean_seconds``, ``error_rate``, ``p95_seconds`` or ``p95_degradation``."""
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return _json_safe(asdict(self))


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None, recursively, so ``json.dumps`` writes valid JSON."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _json_safe(value)
        elif isinstance(value, float) and value != value:
            value = None
        out[key] = value
    return out


def _label(p: float) -> str:
    return f"p{p:g}"


def is_error_status(status: str) -> bool:
    """True for a 4xx/5xx ``status`` tag: an exact code (``"503"``) or a class (``"5xx"``)."""
    if status.isdigit():
        return int(status) >= 400
    return status in ("4xx", "5xx")


def _pooled(
    series: Sequence[Series], start_ns: int, end_ns: int
) -> dict[str, tuple[npt.NDArray[np.float64], int]]:
    """Per endpoint: its durations in the range (NaN dropped) and how many were errors."""
    parts: dict[str, list[npt.NDArray[np.float64]]] = {}
    errors: dict[str, int] = {}
    for s in series:
        lo, hi = np.searchsorted(s.timestamps, (start_ns, end_ns), side="left")
        values = s.values[lo:hi]
        values = values[~np.isnan(values)]
        endpoint = s.tags.get("endpoint", "")
        parts.setdefault(endpoint, []).append(values)
        if is_error_status(s.tags.get("status", "")):
            errors[endpoint] = errors.get(endpoint, 0) + int(values.size)
    return {
        endpoint: (np.concatenate(chunks), errors.get(endpoint, 0))
        for endpoint, chunks in parts.items()
    }


def _figures(
    pooled: Mapping[str, tuple[npt.NDArray[np.float64], int]],
    window_s: float,
    thresholds: PerformanceThresholds,
) -> dict[str, EndpointPerformance]:
    names = sorted(pooled)
    all_values = [pooled[n][0] for n in names]
    total_errors = sum(pooled[n][1] for n in names)
    segments = [*all_values, np.concatenate(all_values) if all_values else np.empty(0)]
    labels = [*names, OVERALL]
    error_counts = [*(pooled[n][1] for n in names), total_errors]
    counts = np.array([v.size for v in segments], dtype=np.intp)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    flat = np.concatenate(segments) if segments else np.empty(0)
    # p95 is always computed: issue detection needs it even when it is not displayed.
    wanted = sorted({*thresholds.percentiles, 95.0})
    quantiles = agg.segment_quantiles(flat, offsets, np.asarray(wanted) / 100.0)
    out = {}
    for i, endpoint in enumerate(labels):
        values = segments[i]
        count = int(values.size)
        out[endpoint] = EndpointPerformance(
            endpoint=endpoint,
            count=count,
            throughput_rps=count / window_s if window_s > 0 else float("nan"),
            mean_seconds=float(values.mean()) if count else float("nan"),
            percentiles_seconds={_label(p): float(quantiles[i, j]) for j, p in enumerate(wanted)},
            error_rate=error_counts[i] / count if count else float("nan"),
            errors=error_counts[i],
            slow_requests=int(np.count_nonzero(values > thresholds.slow_request_seconds)),
        )
    return out


def summarize_series(
    series: Sequence[Series],
    start_ns: int,
    end_ns: int,
    thresholds: PerformanceThresholds = PerformanceThresholds(),
) -> PerformanceSummary:
    """Summarise request series (as a store returns them) over ``[start_ns, end_ns)``."""
    figures = _figures(
        _pooled(series, start_ns, end_ns), (end_ns - start_ns) / NS_PER_S, thresholds
    )
    overall = figures.pop(OVERALL)
    return PerformanceSummary(start_ns, end_ns, overall, figures)


def _ns(ns: int) -> np.datetime64:
    return np.datetime64(ns, "ns")


def _window(now: TimeLike | None, window: str | float, store: Store) -> tuple[int, int]:
    end_ns = to_ns(now) if now is not None else _latest_request_ns(store)
    return end_ns - parse_duration(window), end_ns


def _latest_request_ns(store: Store) -> int:
    newest = [ts for _key, ts, _v in store.latest(REQUEST_METRIC)]
    return max(newest) + 1 if newest else time.time_ns()


def summarize(
    store: Store,
    window: str | float = "5m",
    now: TimeLike | None = None,
    thresholds: PerformanceThresholds = PerformanceThresholds(),
    tags: Mapping[str, str] | None = None,
) -> PerformanceSummary:
    """Request performance over the ``window`` ending at ``now``.

    ``now`` defaults to just after the newest request recorded, so a summary of an idle
    store describes its last activity rather than an empty window.
    """
    start_ns, end_ns = _window(now, window, store)
    series = store.query(REQUEST_METRIC, _ns(start_ns), _ns(end_ns), tags)
    return summarize_series(series, start_ns, end_ns, thresholds)


def _threshold_issues(
    perf: EndpointPerformance, thresholds: PerformanceThresholds
) -> list[PerformanceIssue]:
    where = "all endpoints" if perf.endpoint == OVERALL else f"endpoint {perf.endpoint}"
    p95 = perf.percentiles_seconds.get("p95", float("nan"))
    checks = [
        (
            "mean_seconds",
            perf.mean_seconds,
            thresholds.mean_seconds,
            "high average response time",
            "s",
        ),
        ("error_rate", perf.error_rate, thresholds.error_rate, "high error rate", ""),
        ("p95_seconds", p95, thresholds.p95_seconds, "high 95th percentile response time", "s"),
    ]
    issues = []
    for figure, value, limit, what, unit in checks:
        if value == value and value > limit:
            shown = (
                f"{value:.1%} > {limit:.1%}"
                if figure == "error_rate"
                else (f"{value:.3f}{unit} > {limit:g}{unit}")
            )
            issues.append(
                PerformanceIssue(perf.endpoint, figure, value, limit, f"{what} on {where}: {shown}")
            )
    return issues


def detect_issues(
    store: Store,
    window: str | float = "5m",
    now: TimeLike | None = None,
    thresholds: PerformanceThresholds = PerformanceThresholds(),
) -> list[PerformanceIssue]:
    """Performance issues in the ``window`` ending at ``now`` (see the module docstring)."""
    start_ns, end_ns = _window(now, window, store)
    window_ns = end_ns - start_ns
    baseline_start = start_ns - thresholds.baseline_windows * window_ns
    series = store.query(REQUEST_METRIC, _ns(baseline_start), _ns(end_ns))
    current = summarize_series(series, start_ns, end_ns, thresholds)
    issues = _threshold_issues(current.overall, thresholds)
    for endpoint in sorted(current.endpoints):
        issues += _threshold_issues(current.endpoints[endpoint], thresholds)
    if thresholds.baseline_windows > 0:
        baseline = summarize_series(series, baseline_start, start_ns, thresholds)
        issues += _degradations(current, baseline, thresholds)
    return issues


def _degradations(
    current: PerformanceSummary, baseline: PerformanceSummary, thresholds: PerformanceThresholds
) -> list[PerformanceIssue]:
    issues = []
    for endpoint, now_perf in sorted(current.endpoints.items()):
        before = baseline.endpoints.get(endpoint)
        if before is None or min(now_perf.count, before.count) < thresholds.min_requests:
            continue
        now_p95 = now_perf.percentiles_seconds.get("p95", float("nan"))
        base_p95 = before.percentiles_seconds.get("p95", float("nan"))
        limit = base_p95 * thresholds.degradation_factor
        if base_p95 > 0 and now_p95 > limit:
            issues.append(
                PerformanceIssue(
                    endpoint,
                    "p95_degradation",
                    now_p95,
                    limit,
                    f"endpoint {endpoint} degraded: p95 {now_p95:.3f}s is "
                    f"{now_p95 / base_p95:.1f}x its baseline {base_p95:.3f}s "
                    f"(limit {thresholds.degradation_factor:g}x)",
                )
            )
    return issues
