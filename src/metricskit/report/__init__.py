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

from typing import TYPE_CHECKING

from metricskit._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from metricskit.report.reporter import Reporter, ReportSettings

__all__ = ["ReportSettings", "Reporter"]

__getattr__ = _lazy_exports(__name__, dict.fromkeys(__all__, "metricskit.report.reporter"))
