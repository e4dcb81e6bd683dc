"""Sources the :class:`~metricskit.Collector` runs: host, HTTP, database and business.

Every source has a ``name`` and a ``collect()`` returning :class:`Sample` objects; a
plain function returning ``{name: value}`` works as a source too.
"""

from __future__ import annotations

from metricskit.collect.sources.base import CallableSource, CheckResult, Sample, Source, as_samples
from metricskit.collect.sources.business import BUSINESS_DERIVATIONS, Business, Derived
from metricskit.collect.sources.database import DatabaseCheck
from metricskit.collect.sources.http import HttpCheck, default_http_checks
from metricskit.collect.sources.system import SYSTEM_METRICS, System

__all__ = [
    "BUSINESS_DERIVATIONS",
    "SYSTEM_METRICS",
    "Business",
    "CallableSource",
    "CheckResult",
    "DatabaseCheck",
    "Derived",
    "HttpCheck",
    "Sample",
    "Source",
    "System",
    "as_samples",
    "default_http_checks",
]
