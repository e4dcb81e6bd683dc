"""What every source shares: the :class:`Sample` it returns and the :class:`Source` base.

A source is anything with a ``name`` and a ``collect()`` returning samples. Plain
callables are accepted too (see :func:`as_samples` for what they may return), so a
user's KPI is a three-line function, not a subclass.
"""

from __future__ import annotations

import abc
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Union

import numpy as np

from metricskit._time import TimeLike
from metricskit.errors import InvalidMetricError

__all__ = [
    "CallableSource",
    "CheckResult",
    "Sample",
    "SampleLike",
    "Source",
    "as_samples",
    "log_transition",
]

log = logging.getLogger("metricskit.collect.sources")


class Sample(NamedTuple):
    """One measurement a source produced: metric name, value, optional tags and time.

    ``timestamp=None`` means "when the source ran"; the collector stamps it.
    """

    name: str
    value: float
    tags: Mapping[str, str] | None = None
    timestamp: TimeLike | None = None


SampleLike = Union[  # noqa: UP007 - runtime alias on 3.10
    Sample,
    tuple[str, float],
    tuple[str, float, Mapping[str, str] | None],
]
"""A :class:`Sample` or a ``(name, value)`` / ``(name, value, tags)`` tuple."""


class Source(abc.ABC):
    """A source of samples the :class:`~metricskit.Collector` runs on a schedule.

    ``collect()`` runs in a collector worker thread, one call at a time per source (a
    run is skipped while the previous one is still going), so a source may keep state
    between calls without locking. It may raise; the collector logs and counts that.
    """

    name: str = "source"
    """Identifies the source in logs, stats and the ``source`` tag of the collector's
    own ``metricskit.collector.duration_seconds``."""

    @abc.abstractmethod
    def collect(self) -> list[Sample]:
        """Measure now and return the samples."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release connections or sessions; the collector calls it on ``close()``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class CallableSource(Source):
    """Adapts a function returning ``{name: value}`` or samples (see :func:`as_samples`)."""

    def __init__(self, func: Callable[[], Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__qualname__", None) or repr(func)

    def collect(self) -> list[Sample]:
        """Call the function and normalise what it returned."""
        return as_samples(self.func(), self.name)


def _number(value: object, name: str, where: str) -> float:
    # bool is accepted on purpose: a check returning True/False records 1/0
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    raise InvalidMetricError(
        f"{where} returned {type(value).__name__} {value!r} for {name!r}; expected a number"
    )


def as_samples(result: object, where: str = "source") -> list[Sample]:
    """Normalise what a source or callable returned into a list of :class:`Sample`.

    Accepted: ``None`` (nothing measured), a mapping ``{name: number}``, or an
    iterable of :class:`Sample` / ``(name, value)`` / ``(name, value, tags)``.
    Anything else raises :class:`~metricskit.errors.InvalidMetricError` naming ``where``.
    """
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [Sample(str(k), _number(v, str(k), where)) for k, v in result.items()]
    if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
        raise InvalidMetricError(
            f"{where} returned {type(result).__name__}; expected a dict of name -> number, "
            "a list of Sample / (name, value[, tags]) tuples, or None"
        )
    out: list[Sample] = []
    for item in result:
        if isinstance(item, Sample):
            out.append(item._replace(value=_number(item.value, item.name, where)))
        elif isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], str):
            tags = item[2] if len(item) == 3 else None
            out.append(Sample(item[0], _number(item[1], item[0], where), tags))
        else:
            raise InvalidMetricError(
                f"{where} returned an item {item!r}; expected a Sample or a "
                "(name, value[, tags]) tuple"
            )
    return out


class CheckResult(NamedTuple):
    """The outcome of one health check, kept as ``check.last_result`` for reports.

    ``reason`` is ``"ok"`` or says what failed ("expected status 200, got 500",
    "timed out after 5s", "connection refused"); it never contains a password.
    """

    ok: bool
    reason: str
    elapsed_ms: float | None = None
    status_code: int | None = None
    checked_at: float | None = None
    """Seconds since the epoch when the check finished."""

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for JSON health reports)."""
        return dict(self._asdict())

    def as_dict(self) -> dict[str, Any]:
        """Deprecated spelling of :meth:`to_dict` (every metricskit type says ``to_dict``)."""
        warnings.warn(
            "CheckResult.as_dict() is deprecated; use to_dict()", DeprecationWarning, stacklevel=2
        )
        return self.to_dict()


def log_transition(what: str, previous: CheckResult | None, result: CheckResult) -> None:
    """Log a check going down (warning) or coming back (info), not every failing run."""
    if not result.ok and (previous is None or previous.ok or previous.reason != result.reason):
        log.warning("check %s failed: %s", what, result.reason)
    elif result.ok and previous is not None and not previous.ok:
        log.info("check %s recovered", what)
