"""Business metrics derived from what the application records.

The application records events and gauges (the seed's examples)::

    rec.record("business.ai_call", 1.0, tags={"model": "claude-sonnet"})
    rec.record("business.ai_cost", 0.015, tags={"model": "claude-sonnet"})
    rec.record("business.error", 1.0, tags={"type": "500", "endpoint": "/api/chat"})
    rec.record("business.sessions.active", 42)        # a gauge: sessions open now

and :class:`Business` turns them into the seed's business metrics
(:data:`BUSINESS_DERIVATIONS`):

=================================  ==========================  ========  =========================
target                             from                        function  window
=================================  ==========================  ========  =========================
business.users.active_sessions     business.sessions.active    last      15m (older is stale)
business.ai_calls.total            business.ai_call            sum       today (since midnight)
business.ai_calls.cost_today       business.ai_cost            sum       today (since midnight)
business.errors.rate_per_hour      business.error              rate      1h, scale 3600
=================================  ==========================  ========  =========================

The derivations read the store, so they see what the recorder has flushed; the
recorder's flush interval bounds how stale they can be.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

import numpy as np

from metricskit._time import Clock, SystemClock
from metricskit.collect.derive import Derivation, QueryableStore
from metricskit.collect.sources.base import Sample, Source
from metricskit.errors import InvalidMetricError, MetricsKitError

__all__ = ["BUSINESS_DERIVATIONS", "Business", "Derived"]

log = logging.getLogger("metricskit.collect.sources")

BUSINESS_DERIVATIONS: tuple[Derivation, ...] = (
    Derivation("business.users.active_sessions", "business.sessions.active", "last", "15m"),
    Derivation("business.ai_calls.total", "business.ai_call", "sum", "today"),
    Derivation("business.ai_calls.cost_today", "business.ai_cost", "sum", "today"),
    Derivation("business.errors.rate_per_hour", "business.error", "rate", "1h", scale=3600),
)
"""The seed's business metrics; see the module docstring."""


class Derived(Source):
    """Evaluate ``derivations`` against ``store`` at each collection.

    A derivation that fails (the store is unreachable) is logged and skipped; the
    others still produce their values. If every one fails, the error is raised so the
    collector counts it.
    """

    def __init__(
        self,
        store: QueryableStore,
        derivations: Iterable[Derivation],
        *,
        clock: Clock | None = None,
        name: str = "derived",
    ) -> None:
        self.store = store
        self.derivations: list[Derivation] = list(derivations)
        targets = [d.target for d in self.derivations]
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise InvalidMetricError(f"{name}: more than one derivation targets {dupes}")
        self.clock = clock or SystemClock()
        self.name = name
        self.last_errors: dict[str, str] = {}
        """Target -> error message for derivations that failed on the latest run."""

    def collect(self) -> list[Sample]:
        """Evaluate every derivation at the clock's now."""
        now_ns = self.clock.now_ns()
        stamp = np.datetime64(now_ns, "ns")
        out: list[Sample] = []
        errors: dict[str, str] = {}
        first: MetricsKitError | None = None
        for d in self.derivations:
            try:
                values = d.evaluate(self.store, now_ns)
            except MetricsKitError as exc:
                if d.target not in self.last_errors:
                    log.warning("%s: derivation %s failed: %s", self.name, d.target, exc)
                errors[d.target] = str(exc)
                first = first or exc
                continue
            out.extend(Sample(d.target, v, tags, stamp) for tags, v in values.items())
        self.last_errors = errors
        if first is not None and len(errors) == len(self.derivations):
            raise first
        return out


class Business(Derived):
    """The seed's business metrics (:data:`BUSINESS_DERIVATIONS`) plus ``extra`` ones.

    ``metrics`` keeps only the named targets of the defaults; ``tz`` sets the zone of
    "today" for the defaults (``None``: the system's local zone).
    """

    def __init__(
        self,
        store: QueryableStore,
        *,
        extra: Sequence[Derivation] = (),
        metrics: Iterable[str] | None = None,
        tz: str | None = None,
        clock: Clock | None = None,
        name: str = "business",
    ) -> None:
        defaults = list(BUSINESS_DERIVATIONS)
        if metrics is not None:
            wanted = set(metrics)
            known = {d.target for d in defaults}
            if wanted - known:
                raise InvalidMetricError(
                    f"Business cannot produce {sorted(wanted - known)}; known: {sorted(known)}"
                )
            defaults = [d for d in defaults if d.target in wanted]
        if tz is not None:
            defaults = [dataclasses.replace(d, tz=tz) for d in defaults]
        super().__init__(store, [*defaults, *extra], clock=clock, name=name)
