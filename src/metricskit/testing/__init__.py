"""Real test doubles metricskit ships: a manual clock and the backend conformance suite.

``BackendConformance`` needs pytest and is imported on first use, so importing
``metricskit.testing`` for :class:`ManualClock` does not require pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metricskit.testing.clock import ManualClock

if TYPE_CHECKING:
    from metricskit.testing.conformance import BackendConformance

__all__ = ["BackendConformance", "ManualClock"]


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        from metricskit.testing.conformance import BackendConformance

        return BackendConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
