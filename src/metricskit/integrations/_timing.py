"""What every middleware does once a request is over: record it, never fail the request."""

from __future__ import annotations

import logging
import time

from metricskit.errors import MetricsKitError
from metricskit.recorder import Recorder

log = logging.getLogger("metricskit.integrations")

UNMATCHED = "<unmatched>"
"""The endpoint tag of requests no route matched (404s), so stray paths stay one series."""


def record_request(
    recorder: Recorder, endpoint: str | None, method: str, status: int, started: float
) -> None:
    """Record a finished request; a recording problem is logged, never raised into the app."""
    elapsed = time.perf_counter() - started
    try:
        recorder.record_request(endpoint or UNMATCHED, elapsed, status, method=method.upper())
    except MetricsKitError:
        log.warning("could not record request %s %s", method, endpoint, exc_info=True)
