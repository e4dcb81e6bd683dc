"""A Grafana dashboard (JSON model) for the metrics metricskit exposes to Prometheus.

One row per dashboard section, one time-series panel per metric, each querying the
Prometheus name :func:`metricskit.naming.exposed_name` gives it: gauges as they are,
counters as a per-second ``rate``, and request-duration histograms as throughput, error
rate and p50/p95/p99 from ``histogram_quantile``. Every panel's target is PromQL for a
Prometheus data source, chosen by a dashboard variable: one whose URL is ``metricskit
serve`` itself (its ``/api/v1`` answers the queries straight from the store), or a
Prometheus that scrapes its ``/metrics``; the names are the same either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS, MetricKind, describe
from metricskit.errors import MetricsKitError
from metricskit.naming import exposed_name

__all__ = ["SCHEMA_VERSION", "dashboard", "panel_queries", "push"]

SCHEMA_VERSION = 39
"""The dashboard JSON schema version written (Grafana 10.x and 11.x read it)."""

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_PANEL_WIDTH = 12
_PANEL_HEIGHT = 8
_RATE_WINDOW = "5m"


def _unit(name: str) -> str:
    sample = exposed_name(name).sample
    if "percent" in sample:
        return "percent"
    if sample.endswith("_seconds"):
        return "s"
    if sample.endswith(("_bytes", "_bytes_total")):
        return "bytes"
    return "short"


def _legend(tags: Iterable[str]) -> str:
    return " ".join(f"{{{{{t}}}}}" for t in tags) or "__auto"


def panel_queries(name: str) -> list[tuple[str, str, str]]:
    """The ``(title, PromQL, legend)`` queries the dashboard draws for one metric."""
    exposed = exposed_name(name)
    if exposed.kind is MetricKind.HISTOGRAM:
        by = "endpoint"
        base = exposed.family
        queries = [
            (
                f"p{q}",
                f"histogram_quantile(0.{q}, sum by (le, {by}) "
                f"(rate({base}_bucket[{_RATE_WINDOW}])))",
                _legend([by]) + f" p{q}",
            )
            for q in ("50", "95", "99")
        ]
        queries.append(
            ("throughput", f"sum by ({by}) (rate({base}_count[{_RATE_WINDOW}]))", _legend([by]))
        )
        queries.append(
            (
                "error rate",
                f'sum by ({by}) (rate({base}_count{{status=~"4..|5.."}}[{_RATE_WINDOW}])) / '
                f"sum by ({by}) (rate({base}_count[{_RATE_WINDOW}]))",
                _legend([by]),
            )
        )
        return queries
    if exposed.kind is MetricKind.COUNTER:
        return [(name, f"rate({exposed.sample}[{_RATE_WINDOW}])", "__auto")]
    return [(name, exposed.sample, "__auto")]


def _title(section: str) -> str:
    return section.replace("_", " ").title()


def _panel(panel_id: int, name: str, x: int, y: int) -> dict[str, Any]:
    info = describe(name)
    queries = panel_queries(name)
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": info.description or name,
        "description": f"metricskit metric {name}",
        "datasource": _DATASOURCE,
        "gridPos": {"h": _PANEL_HEIGHT, "w": _PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": _unit(name)}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": _DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (_title_, expr, legend) in enumerate(queries)
        ],
    }


def dashboard(
    sections: Mapping[str, Iterable[str]] | None = None,
    *,
    title: str = "metricskit",
    uid: str | None = None,
    refresh: str = "30s",
    section_titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the dashboard JSON model for ``sections`` (``{section: [metric, ...]}``).

    Without ``sections``, the seed's four sections. ``uid`` defaults to a stable hash of
    the title, so re-importing updates the same dashboard. ``section_titles`` names a
    section's row (else its key, title-cased).
    """
    chosen = DEFAULT_DASHBOARD_SECTIONS if sections is None else sections
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for section, listed in chosen.items():
        metrics = list(listed)
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": (section_titles or {}).get(section) or _title(section),
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for i, name in enumerate(metrics):
            x = (i % 2) * _PANEL_WIDTH
            panels.append(_panel(next_id, name, x, y))
            next_id += 1
            if i % 2 == 1:
                y += _PANEL_HEIGHT
        if len(metrics) % 2 == 1:
            y += _PANEL_HEIGHT
    return {
        "uid": uid or hashlib.sha256(title.encode()).hexdigest()[:12],
        "title": title,
        "tags": ["metricskit"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "description": "A Prometheus data source whose URL is metricskit serve "
                    "(or a Prometheus scraping its /metrics)",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                }
            ]
        },
        "panels": panels,
    }


def push(
    model: Mapping[str, Any], grafana_url: str, *, api_key: str | None = None, timeout: float = 10.0
) -> str:
    """Create or update the dashboard in Grafana through its HTTP API; return its URL.

    ``POST {grafana_url}/api/dashboards/db`` with ``overwrite: true``, so pushing again
    updates the dashboard with the same ``uid``. ``api_key`` is a Grafana service-account
    token (sent as a bearer token, never logged).
    """
    import requests

    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    endpoint = grafana_url.rstrip("/") + "/api/dashboards/db"
    try:
        response = requests.post(
            endpoint,
            json={"dashboard": dict(model), "overwrite": True},
            headers=headers,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise MetricsKitError(
            f"Grafana at {grafana_url} is unreachable: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 400:
        raise MetricsKitError(
            f"Grafana at {grafana_url} refused the dashboard: HTTP {response.status_code} "
            f"{response.text[:200]}"
        )
    path = response.json().get("url", f"/d/{model.get('uid')}")
    return grafana_url.rstrip("/") + str(path)
