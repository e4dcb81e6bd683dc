"""The Recorder: what application code calls on every request.

``record()`` appends ``t_ns, value`` to an in-memory buffer and returns; a
daemon thread writes the buffers to the store in batches (one :class:`Series` per
series) when ``batch_size`` samples are pending, every ``flush_interval`` seconds, on
:meth:`Recorder.flush`, on :meth:`Recorder.close` and at interpreter exit. A failing
store never blocks or raises into ``record()``: failed batches are kept and retried, up
to ``max_buffer`` samples, and what does not fit is dropped and counted. A store that
works but is slower than the callers makes a call that finds ``max_buffer`` samples held
wait for the writer (at most ``max_wait`` seconds) rather than drop.

A name, tag set or value that is wrong raises :class:`~metricskit.errors.InvalidMetricError`
at the call: that is a programming error, not a runtime condition.

    rec = Recorder(store, batch_size=10_000, flush_interval=1.0)
    rec.record("business.user_signups", 5.0, tags={"source": "web"})
    depth = rec.bind("app.queue.depth", tags={"queue": "mail"})
    depth.record(3.0)                      # the cheapest call: no lookup, no validation
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from metricskit._buffer import DROPPED_METRIC, RecordBuffer, SeriesBuffer, StoreLike
from metricskit._histogram import HistogramCounters, ReadLast, is_histogram
from metricskit._series_buffer import EventStamps
from metricskit._time import (
    NS_PER_S,
    Clock,
    SystemClock,
    TimeLike,
    parse_duration,
    to_ns,
    to_ns_array,
)
from metricskit.catalog import DEFAULT_BUCKETS
from metricskit.errors import InvalidArgumentError, InvalidMetricError
from metricskit.model import (
    MAX_TAGS,
    SeriesKey,
    Tags,
    check_value,
    check_values,
    validate_name,
    validate_tags,
)
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend

__all__ = ["REQUEST_METRIC", "BoundSeries", "Recorder"]

logger = logging.getLogger("metricskit.recorder")

REQUEST_METRIC = "http.request.duration_seconds"
"""The metric :meth:`Recorder.record_request` writes (value: seconds)."""

_MIN_NS = -(2**63)
_MAX_NS = 2**63 - 1
# Seconds that still fit in int64 nanoseconds (about 1677..2262).
_MAX_S = _MAX_NS // NS_PER_S
# Raw tag orderings cached per overflowed metric beyond cardinality_limit. Past this a
# never-ending stream of new tag sets (a user id in a tag) costs a validation per call
# instead of unbounded memory.
_MAX_OVERFLOW_ALIASES = 10_000


def _timestamp_ns(timestamp: TimeLike) -> int:
    t = to_ns(timestamp)
    if not _MIN_NS <= t <= _MAX_NS:
        raise InvalidMetricError(f"timestamp {timestamp!r} is out of range (years 1677-2262)")
    return t


def _timestamps_ns(timestamps: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.asarray(timestamps)
    if arr.dtype.kind in "iuf" and arr.size:
        # to_ns_array multiplies seconds by 1e9; out-of-range seconds would wrap silently.
        lo, hi = arr.min(), arr.max()
        if not (lo >= -_MAX_S and hi <= _MAX_S):  # also False for NaN
            raise InvalidMetricError("timestamps must be finite and within years 1677-2262")
    if arr.ndim > 1:
        raise InvalidMetricError(
            f"timestamps must be a 1-d array, not shape {arr.shape}; one call records one series"
        )
    ns = to_ns_array(arr)
    if np.may_share_memory(ns, arr):  # the buffer must own its arrays
        ns = ns.copy()
    return ns.reshape(-1)


class BoundSeries:
    """One series, resolved and validated once: ``record()`` only appends.

    Get one from :meth:`Recorder.bind`. Thread-safe; keeps its Recorder alive.
    """

    __slots__ = ("_buf", "_check", "_core", "_items", "_now", "_recorder", "_ticks", "key")

    def __init__(self, recorder: Recorder, core: RecordBuffer, buf: SeriesBuffer) -> None:
        self.key: SeriesKey = buf.key
        """The series this handle records to."""
        self._recorder = recorder
        self._core = core
        self._buf = buf
        self._items = buf.items
        self._ticks = core.ticks
        # A histogram's samples are events (one per request): two in one clock tick must
        # stay two samples, so they get distinct stamps; other series keep the clock's.
        clock_now = recorder.clock.now_ns
        self._now = EventStamps(clock_now) if is_histogram(self.key.name) else clock_now
        self._check = recorder._check_value

    def __repr__(self) -> str:
        return f"BoundSeries({self.key})"

    def record(self, value: float, timestamp: TimeLike | None = None) -> None:
        """Record one sample; ``timestamp`` defaults to the Recorder's clock."""
        # A finite float is the common case; anything else (int, NaN, inf, np.float64,
        # a str by mistake) takes check_value's full rules.
        if type(value) is not float or value - value != 0.0:
            value = self._check(value)
        t = self._now() if timestamp is None else _timestamp_ns(timestamp)
        ticket = next(self._ticks)
        if ticket < self._core.threshold:
            self._items.extend((t, value))
        else:
            self._core.append_slow(self._buf, t, value, ticket)

    def record_many(self, values: npt.ArrayLike, timestamps: npt.ArrayLike) -> None:
        """Record arrays of values and their timestamps (seconds, or datetime64)."""
        vs = check_values(values, allow_inf=self._recorder.allow_inf)
        ts = _timestamps_ns(timestamps)
        if ts.shape != vs.shape:
            raise InvalidMetricError(
                f"{self.key}: {ts.size} timestamps for {vs.size} values; they must match"
            )
        if vs.size:
            self._core.append_chunk(self._buf, ts, vs)


class _OverflowSeries(BoundSeries):
    """The series a metric's new tag sets fold into past ``cardinality_limit``."""

    __slots__ = ()

    def record(self, value: float, timestamp: TimeLike | None = None) -> None:
        """Record one sample and count it as overflowed."""
        BoundSeries.record(self, value, timestamp)
        self._recorder._count_overflow(1)

    def record_many(self, values: npt.ArrayLike, timestamps: npt.ArrayLike) -> None:
        """Record arrays and count them as overflowed."""
        BoundSeries.record_many(self, values, timestamps)
        self._recorder._count_overflow(int(np.size(values)))


def _with_host(tags: Mapping[str, str] | None, host: bool | str) -> Mapping[str, str] | None:
    if host is False:
        return tags
    name = socket.gethostname() if host is True else host
    return {"host": name, **(tags or {})}


def _checked_buckets(buckets: Sequence[float]) -> list[float]:
    try:
        bounds = [check_value(b) for b in buckets]
    except (InvalidMetricError, TypeError) as exc:
        raise InvalidArgumentError(f"histogram_buckets must be finite numbers: {exc}") from None
    if not bounds or any(math.isnan(b) for b in bounds):
        raise InvalidArgumentError(f"histogram_buckets must be finite numbers, got {buckets!r}")
    return bounds


def _last_reader(store: StoreLike) -> ReadLast | None:
    """How histogram totals resume from the store (a Store: its backend's ``last``)."""
    backend = getattr(store, "backend", None)
    if not isinstance(backend, StorageBackend):
        return None
    return lambda key: backend.last(key, MIN_NS, MAX_NS)


def _close_core(core: RecordBuffer) -> None:
    core.close()


class Recorder:
    """Buffers samples in memory and writes them to ``store`` in batches from a thread.

    Parameters:
        store: a :class:`~metricskit.store.Store` (anything with ``write(batch)`` and
            ``flush()``).
        batch_size: pending samples that wake the flusher.
        flush_interval: seconds (or a duration like ``"5s"``) between background
            flushes; ``None`` flushes only at ``batch_size``, ``flush()`` and ``close()``.
        clock: where "now" comes from (tests pass a ``ManualClock``).
        max_buffer: the most samples held in memory, pending, being written or kept for
            retry while the store fails.
        max_wait: when ``max_buffer`` samples are held because the writer is behind, how
            many seconds a ``record``/``record_many`` call waits for the writer to
            complete a write (``0``: never wait); each completed write restarts the
            wait. Samples are dropped, and counted in :attr:`dropped`, only when the
            store is failing (no call waits for a store that is down) or that wait runs
            out.
        cardinality_limit: distinct tag sets per metric name; further new tag sets are
            recorded into one series tagged ``overflow="true"`` (counted in
            :attr:`overflowed`).
        max_metrics: distinct metric names; recording a further new name raises
            :class:`~metricskit.errors.InvalidMetricError` (a name that embeds data, such
            as a user id, is a bug that would otherwise grow memory and the store without
            bound).
        allow_inf: accept +-inf values (NaN is always accepted).
        histogram_buckets: the upper bounds (``le``) of the cumulative bucket counters
            kept for histogram metrics (``http.request.duration_seconds``), in the
            metric's unit; ``+Inf`` is always added.
        host: tag every series with ``host`` (``True``: this machine's hostname; a
            string: that name), so several hosts can share one store and be told apart.
        default_tags: tags added to every series (explicit tags win), e.g.
            ``{"host": socket.gethostname()}``.
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        batch_size: int = 10_000,
        flush_interval: float | str | None = 1.0,
        clock: Clock | None = None,
        max_buffer: int = 1_000_000,
        max_wait: float = 30.0,
        cardinality_limit: int = 2000,
        max_metrics: int = 10_000,
        allow_inf: bool = False,
        histogram_buckets: Sequence[float] = DEFAULT_BUCKETS,
        default_tags: Mapping[str, str] | None = None,
        host: bool | str = False,
    ) -> None:
        for arg, value in (
            ("batch_size", batch_size),
            ("max_buffer", max_buffer),
            ("cardinality_limit", cardinality_limit),
            ("max_metrics", max_metrics),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{arg} must be an int >= 1, got {value!r}")
        if (
            isinstance(max_wait, bool)
            or not isinstance(max_wait, (int, float))
            or not (0 <= max_wait < float("inf"))
        ):
            raise InvalidArgumentError(
                f"max_wait must be a number of seconds >= 0, got {max_wait!r}"
            )
        interval: float | None = None
        if flush_interval is not None:
            interval = parse_duration(flush_interval) / NS_PER_S
            if interval <= 0:
                raise InvalidArgumentError(
                    f"flush_interval must be > 0 or None, got {flush_interval!r}"
                )
        self.clock: Clock = clock if clock is not None else SystemClock()
        """Where timestamps come from when a call gives none."""
        self.allow_inf = allow_inf
        """Whether +-inf values are accepted."""
        self.cardinality_limit = cardinality_limit
        """Distinct tag sets per metric before new ones fold into the overflow series."""
        self.max_metrics = max_metrics
        """Distinct metric names this Recorder accepts; a further new name raises."""
        self.default_tags: Tags = validate_tags(_with_host(default_tags, host))
        """Tags added to every series."""
        self.overflowed = 0
        """Samples recorded into an overflow series because of ``cardinality_limit``."""
        self._lock = threading.Lock()
        self._handles: dict[object, BoundSeries] = {}
        self._by_key: dict[SeriesKey, BoundSeries] = {}
        self._cardinality: dict[str, int] = {}
        self._overflow: dict[str, BoundSeries] = {}
        self._overflow_aliases = 0
        self._core = RecordBuffer(
            store,
            batch_size=batch_size,
            flush_interval=interval,
            max_buffer=max_buffer,
            max_wait=float(max_wait),
            clock=self.clock,
            self_key=SeriesKey(DROPPED_METRIC, self.default_tags),
            deriver=HistogramCounters(_checked_buckets(histogram_buckets), _last_reader(store)),
        )
        # finalize holds the buffer, not the Recorder: the Recorder can be collected
        # (its buffer is then flushed) and is flushed at interpreter exit if still alive.
        self._finalizer = weakref.finalize(self, _close_core, self._core)

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else f"{len(self._by_key)} series"
        return f"Recorder({self._core.store!r}, {state})"

    @property
    def store(self) -> StoreLike:
        """The store samples are written to."""
        return self._core.store

    @property
    def dropped(self) -> int:
        """Samples dropped because ``max_buffer`` were held while the store failed or made
        no room within ``max_wait`` (or lost at close)."""
        return self._core.dropped

    @property
    def pending(self) -> int:
        """Samples recorded but not yet durable."""
        return self._core.pending()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._core.closed

    # -- recording ----------------------------------------------------------------------

    def record(
        self,
        name: str,
        value: float,
        tags: Mapping[str, str] | None = None,
        timestamp: TimeLike | None = None,
    ) -> None:
        """Record one sample of ``name``; ``timestamp`` defaults to the clock's now.

        ``timestamp`` may be seconds since the epoch, a ``datetime`` (naive = UTC), a
        ``numpy.datetime64`` or an ISO-8601 string.
        """
        # The cache key is the name plus the tag items in the caller's order: no sorting and
        # no validation on a hit. Each ordering seen maps to the same handle.
        try:
            handle = self._handles[(name, *tags.items()) if tags else name]
        except (KeyError, TypeError, AttributeError):
            handle = self._resolve(name, tags)
        handle.record(value, timestamp)

    def record_many(
        self,
        name: str,
        values: npt.ArrayLike,
        timestamps: npt.ArrayLike,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Record arrays of values and timestamps (seconds or datetime64) of one series.

        The arrays are validated and copied. Timestamps are required: samples sharing a
        timestamp would collapse into one (the last wins).
        """
        self.bind(name, tags).record_many(values, timestamps)

    def record_request(
        self,
        endpoint: str,
        response_time: float,
        status_code: int,
        method: str | None = None,
        timestamp: TimeLike | None = None,
    ) -> None:
        """Record an HTTP request's duration as ``http.request.duration_seconds``.

        ``response_time`` is in seconds; the series is tagged ``endpoint``, ``status``
        (the code as a string, ``"200"``) and, when given, ``method`` (as given).
        """
        if isinstance(status_code, bool) or not isinstance(status_code, (int, np.integer)):
            raise InvalidMetricError(
                f"status_code must be an int, not {type(status_code).__name__} {status_code!r}"
            )
        if not 100 <= status_code <= 599:
            raise InvalidMetricError(f"status_code {status_code} is not an HTTP status (100-599)")
        seconds = check_value(response_time)
        if not seconds >= 0.0:  # also False for NaN
            raise InvalidMetricError(
                f"response_time must be a duration in seconds >= 0, not {response_time!r}"
            )
        tags = {"endpoint": endpoint, "status": str(int(status_code))}
        if method is not None:
            tags["method"] = method
        self.record(REQUEST_METRIC, seconds, tags, timestamp)

    def bind(self, name: str, tags: Mapping[str, str] | None = None) -> BoundSeries:
        """Return the handle of one series, for the cheapest ``record()`` calls."""
        try:
            return self._handles[(name, *tags.items()) if tags else name]
        except (KeyError, TypeError, AttributeError):
            return self._resolve(name, tags)

    def _check_value(self, value: object) -> float:
        return check_value(value, allow_inf=self.allow_inf)

    def _resolve(self, name: str, tags: Mapping[str, str] | None) -> BoundSeries:
        """Validate a first-seen name and tag set and return (and cache) its handle."""
        name = validate_name(name)
        given = validate_tags(tags, name)
        if self.default_tags:
            merged = {**self.default_tags, **given}
            if len(merged) > MAX_TAGS:
                validate_tags(merged, name)  # raises, naming the limit
            given = Tags._trusted(tuple(sorted(merged.items())))
        if "le" in given and is_histogram(name):
            raise InvalidMetricError(
                f"tag 'le' on histogram metric {name!r}: 'le' names its buckets' upper bounds"
            )
        key = SeriesKey(name, given)
        with self._lock:
            if self._core.closed:
                raise self._core._closed_error()
            if name not in self._cardinality and len(self._cardinality) >= self.max_metrics:
                raise InvalidMetricError(
                    f"new metric name {name!r}: this Recorder already records "
                    f"{self.max_metrics} metric names (max_metrics); names must not carry "
                    "data such as ids (put those in a tag, or raise max_metrics)"
                )
            handle = self._by_key.get(key)
            aliasable = True
            if handle is None:
                count = self._cardinality.get(name, 0)
                if count < self.cardinality_limit:
                    self._cardinality[name] = count + 1
                    handle = self._by_key[key] = BoundSeries(
                        self, self._core, self._core.buffer(key)
                    )
                else:
                    handle = self._overflow_series(name)
                    aliasable = self._overflow_aliases < _MAX_OVERFLOW_ALIASES
                    self._overflow_aliases += aliasable
            if aliasable:
                self._handles[(name, *tags.items()) if tags else name] = handle
            return handle

    def _overflow_series(self, name: str) -> BoundSeries:
        # Caller holds _lock.
        handle = self._overflow.get(name)
        if handle is None:
            key = SeriesKey(
                name,
                Tags._trusted(tuple(sorted({**self.default_tags, "overflow": "true"}.items()))),
            )
            handle = self._overflow[name] = _OverflowSeries(
                self, self._core, self._core.buffer(key)
            )
            logger.warning(
                "metric %r has %d distinct tag sets (cardinality_limit); samples with new tag "
                "sets are recorded as %s",
                name,
                self.cardinality_limit,
                key,
            )
        return handle

    def _count_overflow(self, n: int) -> None:
        with self._lock:
            self.overflowed += n

    # -- flushing and closing -------------------------------------------------------------

    def flush(self) -> None:
        """Return once every sample recorded before the call is durable in the store.

        Raises :class:`~metricskit.errors.BackendError` if the store fails; the samples
        stay buffered and are retried. After :meth:`close` this does nothing.
        """
        if self._core.closed:
            return
        self._core.flush()

    def close(self) -> None:
        """Flush, stop the flush thread and refuse further samples.

        Never raises for a failing store: it logs how many samples were lost.
        """
        self._finalizer()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> Any:
        raise TypeError("a Recorder holds a thread and buffers and cannot be pickled")
