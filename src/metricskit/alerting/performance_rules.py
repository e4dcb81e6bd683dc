"""The seed's performance thresholds as built-in alert rules.

The seed treats a high error rate (> 5 %), a high mean response time (> 2 s) and a high
95th percentile (> 5 s) as alerts. The rules engine evaluates them like any rule, so they
go pending, fire, notify, resolve and persist as the others do, and the report's overall
status follows them:

- :class:`PerformanceFigures` writes, at every evaluation (before the alert rules, as a
  recording rule does), the request figures over the performance window for all
  endpoints (no tags) and per endpoint (``endpoint`` tag), as computed by
  :func:`metricskit.query.performance.summarize_series`: ``http.request.error_rate_percent``,
  ``http.request.mean_seconds`` and ``http.request.p95_seconds``. A window without
  requests writes NaN for the series written before, so their alerts resolve.
- :func:`default_rules` are the three alert rules on those series (group
  ``performance``); :func:`with_defaults` adds them to a rule set unless it defines a
  rule of the same name, which replaces the built-in one (``enabled: false`` turns it
  off).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metricskit.alerting.rules_model import AlertRule, RuleSet
from metricskit.model import EMPTY_TAGS, Series, SeriesKey, Tags
from metricskit.query.performance import (
    OVERALL,
    REQUEST_METRIC,
    PerformanceThresholds,
    summarize_series,
)
from metricskit.store import Store

__all__ = [
    "ERROR_RATE_METRIC",
    "MEAN_METRIC",
    "P95_METRIC",
    "PerformanceFigures",
    "default_rules",
    "with_defaults",
]

logger = logging.getLogger("metricskit.alerting.engine")

ERROR_RATE_METRIC = "http.request.error_rate_percent"
"""Share of 4xx/5xx requests in the performance window, in percent."""
MEAN_METRIC = "http.request.mean_seconds"
"""Mean request duration in the performance window."""
P95_METRIC = "http.request.p95_seconds"
"""95th percentile of the request durations in the performance window."""


def default_rules(
    thresholds: PerformanceThresholds, channels: Sequence[str] = ("log",)
) -> tuple[AlertRule, ...]:
    """The built-in ``performance.*`` rules for ``thresholds``, routed to ``channels``.

    No data (no requests in the window) resolves them, as a Prometheus ratio of rates
    without traffic has no value.
    """
    common = {"operator": "gt", "severity": "warning", "channels": tuple(channels), "no_data": "ok"}
    specs = (
        (
            "high_error_rate",
            ERROR_RATE_METRIC,
            thresholds.error_rate * 100,
            "High error rate: {value}% of requests failed (> {threshold}%)",
        ),
        (
            "high_mean_response_time",
            MEAN_METRIC,
            thresholds.mean_seconds,
            "High average response time: {value}s (> {threshold}s)",
        ),
        (
            "high_p95_response_time",
            P95_METRIC,
            thresholds.p95_seconds,
            "High 95th percentile response time: {value}s (> {threshold}s)",
        ),
    )
    return tuple(
        AlertRule.create(
            f"performance.{name}", metric=metric, threshold=limit, summary=summary, **common
        )
        for name, metric, limit, summary in specs
    )


def with_defaults(rules: RuleSet, defaults: Sequence[AlertRule]) -> RuleSet:
    """``rules`` plus each default whose name no rule of ``rules`` has."""
    own = {r.name for r in rules.alerts}
    added = tuple(r for r in defaults if r.name not in own)
    return rules.model_copy(update={"alerts": (*rules.alerts, *added)})


@dataclass
class PerformanceFigures:
    """Writes the request figures the built-in rules read (see the module docstring)."""

    window_ns: int
    thresholds: PerformanceThresholds = field(default_factory=PerformanceThresholds)
    _written: set[SeriesKey] = field(default_factory=set, repr=False)

    def series_at(self, store: Store, now_ns: int) -> list[Series]:
        """The figures over ``(now_ns - window, now_ns]`` as one-sample series at ``now_ns``."""
        start, end = now_ns - self.window_ns + 1, now_ns + 1
        found = store.query(REQUEST_METRIC, np.datetime64(start, "ns"), np.datetime64(end, "ns"))
        summary = summarize_series(found, start, end, self.thresholds)
        values: dict[SeriesKey, float] = {}
        for perf in (summary.overall, *summary.endpoints.values()):
            if not perf.count:
                continue
            try:
                tags = EMPTY_TAGS if perf.endpoint == OVERALL else Tags({"endpoint": perf.endpoint})
            except ValueError as exc:  # requests recorded without a usable endpoint tag
                logger.debug("performance figures: skipping endpoint %r: %s", perf.endpoint, exc)
                continue
            figures = (
                (ERROR_RATE_METRIC, perf.error_rate * 100),
                (MEAN_METRIC, perf.mean_seconds),
                (P95_METRIC, perf.percentiles_seconds["p95"]),
            )
            for metric, value in figures:
                values[SeriesKey(metric, tags)] = float(value)
        # series written before that have no requests now get NaN: their alerts resolve
        for key in self._written - values.keys():
            values[key] = float("nan")
        self._written = {k for k, v in values.items() if v == v}
        ts = np.array([now_ns], dtype=np.int64)
        return [Series(k, ts, np.array([v], dtype=np.float64)) for k, v in values.items()]
