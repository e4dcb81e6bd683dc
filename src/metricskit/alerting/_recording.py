"""Recording rules at an evaluation: their results are written before the alert rules run."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from metricskit.alerting._evaluate import Evaluation, result_tags
from metricskit.alerting._expr import instant_samples
from metricskit.alerting.rules_model import ExprRecordingRule, RecordingRule
from metricskit.errors import QueryError
from metricskit.model import Series, SeriesKey
from metricskit.store import Store

__all__ = ["ComputedSeries", "Recorders"]

logger = logging.getLogger("metricskit.alerting.engine")


class ComputedSeries(Protocol):
    """Series the engine writes at every evaluation before the alert rules, as a
    recording rule does."""

    def series_at(self, store: Store, now_ns: int) -> list[Series]:
        """The samples to write for an evaluation at ``now_ns``."""
        ...


def _sample(key: SeriesKey, t: int, value: float) -> Series:
    return Series(key, np.array([t]), np.array([value], dtype=float))


class Recorders:
    """Everything an evaluation records: PromQL ``record:`` rules, derivations
    (``recording:``) and computed series; one failing never stops the others."""

    def __init__(
        self,
        expr_rules: Sequence[ExprRecordingRule],
        rules: Sequence[RecordingRule],
        computed: Iterable[ComputedSeries] = (),
    ) -> None:
        self.expr_rules = tuple(expr_rules)
        self.rules = tuple(rules)
        self._derivations = [r.derivation() for r in self.rules]
        self.computed = tuple(computed)
        self.evaluations: dict[str, Evaluation] = {}
        """The latest evaluation of each recording rule, by name."""

    def record(self, store: Store, t: int) -> None:
        """Evaluate every recording rule at ``t`` and write the results to ``store``."""
        for rule in self.expr_rules:
            started, error = time.perf_counter(), None
            try:
                written = [
                    _sample(SeriesKey(rule.record, result_tags(labels, rule.labels)), t, value)
                    for labels, value in instant_samples(store, rule.plan, t)
                ]
                if len({s.key for s in written}) < len(written):
                    raise QueryError(
                        "vector contains metrics with the same labelset after applying rule labels"
                    )
                limit = 0 if rule.source is None else rule.source.limit
                if limit and len(written) > limit:  # as Prometheus: nothing is written
                    raise QueryError(f"exceeded limit of {limit} with {len(written)} series")
                # written at once: a later rule of the same evaluation reads this result
                if written:
                    store.write(written)
            except Exception as exc:  # one broken recording rule must not stop the rest
                logger.warning("recording rule %r failed: %s", rule.name, exc)
                error = str(exc)
            self.evaluations[rule.name] = Evaluation(t, time.perf_counter() - started, error)
        batch = []
        for rec, derivation in zip(self.rules, self._derivations, strict=True):
            started, error = time.perf_counter(), None
            try:
                for tags, value in derivation.evaluate(store, t).items():
                    batch.append(_sample(SeriesKey.of(derivation.target, tags), t, value))
            except Exception as exc:  # one broken recording rule must not stop the rest
                logger.warning("recording rule %r failed: %s", rec.name, exc)
                error = str(exc)
            self.evaluations[rec.name] = Evaluation(t, time.perf_counter() - started, error)
        for source in self.computed:
            try:
                batch.extend(source.series_at(store, t))
            except Exception as exc:
                logger.warning("computed series %r failed: %s", source, exc)
        if batch:
            store.write(batch)
