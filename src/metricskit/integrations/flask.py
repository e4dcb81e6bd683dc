"""Flask integration: ``init_app(app, recorder)`` times every request by its URL rule.

The endpoint tag is the rule template (``/users/<int:user_id>``), so one route is one
series whatever ids it serves; requests no rule matched are tagged ``<unmatched>``.
Requests from metricskit's own health checks (the ``X-Metricskit-Health-Check`` header)
are not recorded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from metricskit.integrations._timing import HEALTH_CHECK_HEADER, record_request
from metricskit.recorder import Recorder

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["init_app"]

_STARTED = "_metricskit_started"
_RECORDED = "_metricskit_recorded"


def init_app(app: Flask, recorder: Recorder) -> None:
    """Register request hooks on a Flask ``app`` that record into ``recorder``."""
    from flask import g, request

    def rule() -> str | None:
        return request.url_rule.rule if request.url_rule is not None else None

    @app.before_request
    def _start_timer() -> None:
        # an untimed request is not recorded: metricskit's own health checks stay out
        if HEALTH_CHECK_HEADER not in request.headers:
            setattr(g, _STARTED, time.perf_counter())

    @app.after_request
    def _record(response: Any) -> Any:
        started = getattr(g, _STARTED, None)
        if started is not None:
            record_request(recorder, rule(), request.method, response.status_code, started)
            setattr(g, _RECORDED, True)
        return response

    @app.teardown_request
    def _record_unhandled(exc: BaseException | None) -> None:
        # after_request does not run when an exception propagates (testing/debug mode):
        # the request still counts, as a 500.
        started = getattr(g, _STARTED, None)
        if started is not None and not getattr(g, _RECORDED, False):
            record_request(recorder, rule(), request.method, 500, started)
