"""The Collector: runs sources on their own intervals and records what they return.

::

    col = Collector(rec)
    col.add(sources.System(), interval="60s")
    col.add(sources.HttpCheck("http://127.0.0.1:5000/api/health", expect_json=True), interval="30s")
    col.add(my_function, interval="300s")   # returns {name: value} or samples
    col.collect_once()                      # one pass of every source
    col.start(); ...; col.stop()            # background thread; start(duration=3600) too

How it keeps one source from hurting the others:

- Each source runs in its own daemon worker thread, so a slow source never delays
  another and a hung one holds only its own thread (and never blocks interpreter exit).
- A source still running when its next run is due is skipped; the skip is counted.
- A run that takes longer than the source's ``timeout`` is counted as a timeout and
  its samples are discarded (they describe a moment long gone). ``collect_once`` waits
  at most that long for each source.
- An exception from a source, or a sample the recorder rejects, is logged with the
  source's name (once per distinct message; repeats go to DEBUG) and counted.

The collector measures itself: ``metricskit.collector.duration_seconds`` (tag
``source``) after every run. Scheduling reads the ``clock``, so tests drive it with a
:class:`~metricskit.testing.ManualClock` and :meth:`Collector.run_pending`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from metricskit._scheduler import Scheduler
from metricskit._time import NS_PER_S, Clock, SystemClock, TimeLike, parse_duration
from metricskit.collect.sources.base import CallableSource, Sample, Source, as_samples
from metricskit.errors import InvalidArgumentError, MetricsKitError, StateError

if TYPE_CHECKING:
    from metricskit.collect.sources.config import CollectionConfig

__all__ = ["SELF_METRIC", "Collector", "RecorderLike", "ScheduledSource"]

log = logging.getLogger("metricskit.collect.collector")

SELF_METRIC = "metricskit.collector.duration_seconds"
"""Seconds each source's run took, tagged ``source``."""
_WAIT_GRACE_S = 0.25  # lets a run that finished just inside its timeout hand over
_DEFAULT_TIMEOUT_S = 30.0
_TASK = "collect"
_IDLE_S = 1.0  # without sources, look again this often


class RecorderLike(Protocol):
    """What the collector records into: :meth:`metricskit.Recorder.record`."""

    def record(
        self,
        name: str,
        value: float,
        tags: Mapping[str, str] | None = None,
        timestamp: TimeLike | None = None,
    ) -> None:
        """Record one sample."""
        ...


class _Worker:
    """One daemon thread running one source's calls in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._loop, name=f"collector:{name}", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut

    def shutdown(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to whoever waits
                fut.set_exception(exc)


class ScheduledSource:
    """A source as the collector runs it: schedule, limits and counters.

    Counters: ``runs`` (finished runs), ``errors`` (runs that raised, plus samples the
    recorder rejected), ``skipped`` (due while the previous run was still going),
    ``timeouts`` (runs that finished after ``timeout``; their samples were dropped).
    """

    def __init__(
        self,
        source: Source,
        name: str,
        interval_ns: int,
        timeout_s: float,
        only: frozenset[str] | None,
    ) -> None:
        self.source = source
        self.name = name
        self.interval_ns = interval_ns
        self.timeout_s = timeout_s
        self.only = only
        """Metric names kept from this source's output (``None``: all)."""
        self.next_due_ns: int | None = None
        self.runs = 0
        self.errors = 0
        self.skipped = 0
        self.timeouts = 0
        self.last_error: str | None = None
        self.last_duration_s: float | None = None
        self.last_samples = 0
        self._future: Future[list[Sample]] | None = None
        self._started_at: float | None = None
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """True while a run is in flight."""
        return self._future is not None and not self._future.done()

    def stats(self) -> dict[str, Any]:
        """Counters and the latest outcome, as plain data."""
        with self._lock:
            running = (
                time.monotonic() - self._started_at
                if self.busy and self._started_at is not None
                else None
            )
            return {
                "interval_s": self.interval_ns / NS_PER_S,
                "timeout_s": self.timeout_s,
                "runs": self.runs,
                "errors": self.errors,
                "skipped": self.skipped,
                "timeouts": self.timeouts,
                "last_error": self.last_error,
                "last_duration_s": self.last_duration_s,
                "last_samples": self.last_samples,
                "running_for_s": running,
            }

    def __repr__(self) -> str:
        return f"ScheduledSource({self.name!r}, every {self.interval_ns / NS_PER_S:g}s)"


class Collector:
    """Runs sources on their intervals and records their samples into ``recorder``.

    ``clock`` decides when runs are due and stamps samples (sources may stamp their
    own). ``self_metrics=False`` turns off ``metricskit.collector.duration_seconds``.
    """

    def __init__(
        self,
        recorder: RecorderLike,
        *,
        clock: Clock | None = None,
        self_metrics: bool = True,
    ) -> None:
        self.recorder = recorder
        self.clock: Clock = clock or SystemClock()
        self.self_metrics = self_metrics
        self._jobs: dict[str, ScheduledSource] = {}
        self._lock = threading.Lock()
        self._logged: dict[str, str] = {}
        # the background loop: the same clock-driven Scheduler as the service's, one task
        self._scheduler = Scheduler(self.clock)
        self._scheduler.every(_TASK, _IDLE_S, timed=self._collect_due)

    # -- configuration ------------------------------------------------------------------

    def add(
        self,
        source: Source | Callable[[], Any],
        interval: str | float = "60s",
        *,
        name: str | None = None,
        timeout: str | float | None = None,
        only: Iterable[str] | None = None,
    ) -> ScheduledSource:
        """Schedule ``source`` every ``interval``; it first runs at the next pass.

        ``source`` is a :class:`~metricskit.collect.sources.Source` or a callable returning
        ``{name: value}`` or samples. ``timeout`` defaults to the interval, at most
        30 s. ``only`` keeps just those metric names from its output. A name already
        taken gets ``#2``, ``#3``... appended.
        """
        if not isinstance(source, Source):
            if not callable(source):
                raise InvalidArgumentError(
                    f"a source must be a Source or a callable, not {source!r}"
                )
            source = CallableSource(source, name)
        interval_ns = parse_duration(interval)
        if interval_ns <= 0:
            raise InvalidArgumentError(f"interval must be > 0, got {interval!r}")
        if timeout is None:
            timeout_s = min(interval_ns / NS_PER_S, _DEFAULT_TIMEOUT_S)
        else:
            timeout_s = parse_duration(timeout) / NS_PER_S
            if timeout_s <= 0:
                raise InvalidArgumentError(f"timeout must be > 0, got {timeout!r}")
        with self._lock:
            base = name or source.name
            unique, n = base, 1
            while unique in self._jobs:
                n += 1
                unique = f"{base}#{n}"
            job = ScheduledSource(
                source, unique, interval_ns, timeout_s, None if only is None else frozenset(only)
            )
            self._jobs[unique] = job
        self._scheduler.due_now(_TASK)
        return job

    def remove(self, name: str) -> None:
        """Stop scheduling the source called ``name`` (a run in flight finishes)."""
        with self._lock:
            job = self._jobs.pop(name)
        if job._worker is not None:
            job._worker.shutdown()

    @property
    def sources(self) -> list[ScheduledSource]:
        """The scheduled sources, in the order they were added."""
        with self._lock:
            return list(self._jobs.values())

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per source name: counters and latest outcome (see :class:`ScheduledSource`)."""
        return {job.name: job.stats() for job in self.sources}

    # -- running ------------------------------------------------------------------------

    def collect_once(self) -> list[Sample]:
        """Run every source now (those not still busy) and return what was recorded.

        Waits at most each source's timeout; a source that is slower is left running
        and what it returns later is discarded.
        """
        started = time.monotonic()
        pending = [(job, self._submit(job)) for job in self.sources]
        out: list[Sample] = []
        for job, fut in pending:
            if fut is None:
                continue
            remaining = started + job.timeout_s + _WAIT_GRACE_S - time.monotonic()
            try:
                out.extend(fut.result(timeout=max(0.0, remaining)))
            except FutureTimeout:
                self._log(job.name, "timeout", f"still running after {job.timeout_s:g}s")
        return out

    def run_pending(self, *, wait: bool = False) -> list[ScheduledSource]:
        """Start the runs that are due at the clock's now; return the sources started.

        With ``wait=True``, wait for them (each at most its timeout) before returning.
        """
        now = self.clock.now_ns()
        started: list[tuple[ScheduledSource, Future[list[Sample]]]] = []
        for job in self.sources:
            if job.next_due_ns is None or job.next_due_ns - now > job.interval_ns:
                job.next_due_ns = now  # first pass, or the clock was set backwards
            if now < job.next_due_ns:
                continue
            following = job.next_due_ns + job.interval_ns
            # after a stall, resume the rhythm from now instead of bursting to catch up
            job.next_due_ns = following if following > now else now + job.interval_ns
            fut = self._submit(job)
            if fut is not None:
                started.append((job, fut))
        if wait:
            t0 = time.monotonic()
            for job, fut in started:
                remaining = t0 + job.timeout_s + _WAIT_GRACE_S - time.monotonic()
                with contextlib.suppress(FutureTimeout):
                    fut.result(timeout=max(0.0, remaining))
        return [job for job, _ in started]

    def _collect_due(self, _now_ns: int) -> int | None:
        self.run_pending()
        return self.next_due_ns()

    def next_due_ns(self) -> int | None:
        """When the next run is due on the clock (now for a source not run yet);
        ``None`` without sources."""
        dues = [job.next_due_ns for job in self.sources]
        if any(d is None for d in dues):
            return self.clock.now_ns()
        return min((d for d in dues if d is not None), default=None)

    def _submit(self, job: ScheduledSource) -> Future[list[Sample]] | None:
        with job._lock:
            if job.busy:
                job.skipped += 1
                skipped = True
            else:
                skipped = False
                if job._worker is None:
                    job._worker = _Worker(job.name)
                job._started_at = time.monotonic()
                job._future = job._worker.submit(lambda: self._run(job))
        if skipped:
            self._log(job.name, "skip", "skipped a run: the previous one is still running")
            return None
        return job._future

    def _run(self, job: ScheduledSource) -> list[Sample]:
        """One run, in the source's worker thread: collect, record, count."""
        t0 = time.perf_counter()
        samples: list[Sample] = []
        error: str | None = None
        try:
            samples = as_samples(job.source.collect(), job.name)
        except Exception as exc:  # a source must never kill the collector
            error = f"{type(exc).__name__}: {exc}"
            self._log(job.name, "error", f"failed: {error}", exc)
        duration = time.perf_counter() - t0
        stamp = np.datetime64(self.clock.now_ns(), "ns")
        late = duration > job.timeout_s
        if late:
            self._log(
                job.name,
                "timeout",
                f"took {duration:.3g}s, over its {job.timeout_s:g}s timeout; samples discarded",
            )
            samples = []
        if job.only is not None:
            samples = [s for s in samples if s.name in job.only]
        recorded: list[Sample] = []
        rejected: list[str] = []
        for s in samples:
            s = s if s.timestamp is not None else s._replace(timestamp=stamp)
            try:
                self.recorder.record(s.name, s.value, s.tags, s.timestamp)
            except MetricsKitError as exc:
                rejected.append(f"{s.name!r}: {exc}")
            else:
                recorded.append(s)
        if self.self_metrics:
            own = Sample(SELF_METRIC, duration, {"source": job.name}, stamp)
            try:
                self.recorder.record(own.name, own.value, own.tags, own.timestamp)
            except MetricsKitError as exc:
                rejected.append(f"{own.name!r}: {exc}")
            else:
                recorded.append(own)
        if rejected:
            more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            self._log(job.name, "sample", f"sample {rejected[0]} rejected{more}")
        with job._lock:
            job.runs += 1
            job.timeouts += late
            job.errors += (error is not None) + len(rejected)
            job.last_error = error
            job.last_duration_s = duration
            job.last_samples = len(recorded)
        if error is None and not late and not rejected:
            self._logged.pop(job.name, None)
        return recorded

    def _log(self, name: str, kind: str, message: str, exc: BaseException | None = None) -> None:
        key = f"{kind}:{message}"
        if self._logged.get(name) == key:
            log.debug("source %s %s", name, message)
            return
        self._logged[name] = key
        log.warning("source %s %s", name, message, exc_info=exc)

    # -- the background loop ------------------------------------------------------------

    def _until(self, duration: str | float | None) -> int | None:
        return None if duration is None else self.clock.now_ns() + parse_duration(duration)

    def run(self, duration: str | float | None = None) -> None:
        """Run the schedule in this thread until :meth:`stop` or ``duration`` passes."""
        self._scheduler.run(self._until(duration))

    def start(self, duration: str | float | None = None) -> None:
        """Run the schedule in a background thread (for ``duration``, or until stopped)."""
        if self.running:
            raise StateError("the collector is already running")
        self._scheduler.start("metricskit-collector", until_ns=self._until(duration))

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._scheduler.running

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread (e.g. after ``start(duration=...)``)."""
        self._scheduler.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread and wait up to ``timeout`` s for runs in flight."""
        deadline = time.monotonic() + timeout
        self._scheduler.stop(timeout)
        self.wait(max(0.0, deadline - time.monotonic()))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the runs in flight; True if none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in self.sources:
            fut = job._future
            if fut is not None and not fut.done():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                # a failure or timeout here was already counted by _run
                with contextlib.suppress(Exception):
                    fut.result(timeout=left)
        return not any(job.busy for job in self.sources)

    def close(self) -> None:
        """Stop, end the worker threads and close every source."""
        self.stop()
        for job in self.sources:
            if job._worker is not None:
                job._worker.shutdown()
                job._worker = None
            try:
                job.source.close()
            except Exception as exc:  # closing the rest matters more
                log.warning("source %s failed to close: %s", job.name, exc)

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Collector({len(self._jobs)} sources, {state})"

    @classmethod
    def from_config(
        cls,
        recorder: RecorderLike,
        collection: CollectionConfig | Mapping[str, Any] | None,
        app_url: str | None = None,
        database_url: str | None = None,
        store: Any = None,
        *,
        clock: Clock | None = None,
    ) -> Collector:
        """Build a collector from the seed's ``collection:`` config section.

        ``collection`` is a loaded config's ``CollectionConfig`` (``config.collection``) or
        a plain mapping, validated into one. ``store`` (for business metrics) defaults to
        the recorder's store. See :mod:`metricskit.collect.sources.config` for which
        ``enabled_metrics`` names enable which metrics.
        """
        from metricskit.collect.sources.config import plan_sources

        if store is None:
            store = getattr(recorder, "store", None)
        col = cls(recorder, clock=clock)
        for planned in plan_sources(
            collection, app_url=app_url, database_url=database_url, store=store, clock=clock
        ):
            col.add(planned.source, planned.interval_s, only=planned.only)
        return col
