"""Reports: health reports, recommendations, trends, HTML dashboards and Grafana export.

- :mod:`~metricskit.report.reporter`: :class:`Reporter`, which turns a store, a collector
  and a rule engine into the typed reports of :mod:`~metricskit.report.types`;
- :mod:`~metricskit.report.recommendations`, :mod:`~metricskit.report.trends`: findings
  and trend rows;
- :mod:`~metricskit.report.html`: the self-contained HTML dashboard;
- :mod:`~metricskit.report.grafana`: a Grafana dashboard for the exposed metrics.

Reads through query, collect and alerting; only the server, service and CLI import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metricskit.report.reporter import Reporter, ReportSettings

__all__ = ["ReportSettings", "Reporter"]


def __getattr__(name: str) -> Any:
    # imported on first use, so that importing one module of the package stays cheap
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("metricskit.report.reporter"), name)
    globals()[name] = value
    return value
