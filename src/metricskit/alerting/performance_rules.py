"""The seed's performance thresholds as built-in PromQL expression rules.

The seed treats a high error rate (> 5 %), a high mean response time (> 2 s) and a high
95th percentile (> 5 s) as alerts. :func:`default_rules` makes them ``expr:`` rules
(group ``performance``) over the request metric the Recorder and the integrations write,
``http.request.duration_seconds`` (PromQL: ``http_request_duration_seconds``), with the
thresholds and the window of the config's ``performance`` section. The engine evaluates
them like any rule, so they go pending, fire, notify, resolve and persist as the others
do, and the report's overall status follows them. Each alerts for all endpoints (no
tags) and per endpoint (``endpoint`` tag):

- ``high_error_rate``: the share of the window's requests with a 4xx/5xx status,
  counted on the observations themselves (``count_over_time``): exactly the seed's
  "percentage of requests returning 4xx/5xx" and the report's ``error_rate``;
- ``high_mean_response_time``: ``sum_over_time / count_over_time`` of the observations,
  exactly the mean of the window's requests;
- ``high_p95_response_time``: ``histogram_quantile(0.95, ...)`` over the rate of the
  ``_bucket`` counters. An exact percentile of an endpoint's requests pools the samples
  of several series (one per status and method), which no PromQL function does; the
  bucket estimate interpolates inside a bucket and, as a ``rate``, needs two samples of
  the counters in the window (two flushes of the Recorder). With the default buckets
  the seed's 5 s is a bucket bound, so the rule fires when more than 5 % of the window's
  requests took longer than 5 s.

The error and mean rules read the observations, which only metricskit stores (a
Prometheus scraping ``/metrics`` has the ``_count``/``_sum`` counters); ``docs/rules.md``
shows their ``rate()`` forms for a Prometheus server. :func:`with_defaults` adds the rules
to a rule set unless it defines a rule of the same name, which replaces the built-in one
(``enabled: false`` turns it off).
"""

from __future__ import annotations

from collections.abc import Sequence

from metricskit._time import parse_duration
from metricskit.alerting.rules_model import AlertRule, RuleSet
from metricskit.naming import exposed_name
from metricskit.query.performance import REQUEST_METRIC, PerformanceThresholds

__all__ = ["ERROR_STATUS", "REQUESTS", "default_rules", "expressions", "with_defaults"]

REQUESTS = exposed_name(REQUEST_METRIC).family
"""The request observations as PromQL names them (``http_request_duration_seconds``)."""
ERROR_STATUS = "[45]([0-9][0-9]|xx)"
"""The ``status`` tags that count as errors: 4xx/5xx codes, or their class when
``performance.error_tracking.track_error_details`` is off."""

_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def _promql_duration(window: str | float) -> str:
    ms = max(1, round(parse_duration(window) / 1_000_000))
    return next(f"{ms // size}{unit}" for unit, size in _UNITS if ms % size == 0)


def _each_endpoint_and_all(template: str, by: str = "") -> str:
    # one alert per endpoint and one for all of them (no tags), as the report's figures;
    # "<by>" is where each aggregation's grouping goes
    per_endpoint = template.replace("<by>", f"by ({by}endpoint) ")
    overall = template.replace("<by>", f"by ({by.rstrip(', ')}) " if by else "")
    return f"({per_endpoint} or {overall})"


def expressions(thresholds: PerformanceThresholds, window: str | float = "5m") -> dict[str, str]:
    """The PromQL condition of each built-in rule (by rule name, without the group)."""
    w = _promql_duration(window)
    errors = f'count_over_time({REQUESTS}{{status=~"{ERROR_STATUS}"}}[{w}])'
    count = f"count_over_time({REQUESTS}[{w}])"
    total = f"sum_over_time({REQUESTS}[{w}])"
    buckets = f"rate({REQUESTS}_bucket[{w}])"
    ratio = f"sum <by>({errors}) / sum <by>({count})"
    mean = f"sum <by>({total}) / sum <by>({count})"
    p95 = f"histogram_quantile(0.95, sum <by>({buckets}))"
    return {
        "high_error_rate": f"{_each_endpoint_and_all(ratio)} > {thresholds.error_rate!r}",
        "high_mean_response_time": f"{_each_endpoint_and_all(mean)} > {thresholds.mean_seconds!r}",
        "high_p95_response_time": f"{_each_endpoint_and_all(p95, 'le, ')} > "
        f"{thresholds.p95_seconds!r}",
    }


def default_rules(
    thresholds: PerformanceThresholds,
    channels: Sequence[str] = ("log",),
    window: str | float = "5m",
) -> tuple[AlertRule, ...]:
    """The built-in ``performance.*`` rules for ``thresholds`` over ``window``, routed to
    ``channels``.

    They are warnings with ``for: 0`` (the window already smooths); a window without
    requests has no result, which resolves them, as a Prometheus ratio of rates without
    traffic has no value.
    """
    exprs = expressions(thresholds, window)
    summaries = {
        "high_error_rate": "High error rate: {{ $value | humanizePercentage }} of requests "
        f"failed (> {thresholds.error_rate * 100:g}%)",
        "high_mean_response_time": "High average response time: "
        f"{{{{ $value | humanizeDuration }}}} (> {thresholds.mean_seconds:g}s)",
        "high_p95_response_time": "High 95th percentile response time: "
        f"{{{{ $value | humanizeDuration }}}} (> {thresholds.p95_seconds:g}s)",
    }
    return tuple(
        AlertRule.create(
            f"performance.{name}",
            expr=expr,
            severity="warning",
            channels=tuple(channels),
            annotations={"summary": summaries[name]},
        )
        for name, expr in exprs.items()
    )


def with_defaults(rules: RuleSet, defaults: Sequence[AlertRule]) -> RuleSet:
    """``rules`` plus each default whose name no rule of ``rules`` has."""
    own = {r.name for r in rules.alerts}
    added = tuple(r for r in defaults if r.name not in own)
    return rules.model_copy(update={"alerts": (*rules.alerts, *added)})
