"""One clock-driven scheduler for the service's periodic work.

Collection, rule evaluation, retention, the status file (and housekeeping to come)
are tasks with a period. :meth:`Scheduler.tick` runs the tasks due at a given time in
the calling thread, so tests drive the whole service with a
:class:`~metricskit.testing.ManualClock` and ``tick()`` instead of sleeping;
:meth:`Scheduler.start` calls ``tick`` from one background thread.

::

    sched = Scheduler(clock)
    sched.every("status", 1.0, write_status)
    sched.every("retention", 3600.0, cleanup)      # first run at the first tick
    sched.tick()                                   # runs what is due now
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from metricskit._time import NS_PER_S, Clock
from metricskit.errors import InvalidArgumentError, StateError

__all__ = ["Scheduler", "Task"]

log = logging.getLogger("metricskit.scheduler")

_MAX_SLEEP_S = 1.0  # re-read the clock at least this often: wall clocks jump


@dataclass
class Task:
    """One periodic piece of work.

    ``run(now_ns)`` may return when it is next due (ns on the scheduler's clock), for
    work with its own timetable such as the collector's sources; ``None`` means one
    ``interval_ns`` after this run.
    """

    name: str
    interval_ns: int
    run: Callable[[int], int | None]
    next_due_ns: int | None = None  # None: due at the first tick
    last_run_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        """True when the task should run at ``now_ns``."""
        if self.next_due_ns is None or now_ns >= self.next_due_ns:
            return True
        # a clock set backwards would otherwise stall the task until it caught up
        return self.last_run_ns is not None and now_ns < self.last_run_ns


class Scheduler:
    """Runs named tasks on their periods, by ``clock``; one task's failure is logged."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._tasks: dict[str, Task] = {}
        self._lock = threading.RLock()  # one tick at a time: each due run happens once
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def every(
        self,
        name: str,
        interval_s: float,
        fn: Callable[[], object] | None = None,
        *,
        timed: Callable[[int], int | None] | None = None,
        first_after_s: float = 0.0,
    ) -> Task:
        """Run ``fn()`` (or ``timed(now_ns)``, which may return its next due time) every
        ``interval_s`` seconds by the clock, the first time at the next tick (or
        ``first_after_s`` seconds from now)."""
        if (fn is None) == (timed is None):
            raise InvalidArgumentError("give exactly one of fn or timed")
        if interval_s <= 0:
            raise InvalidArgumentError(f"interval must be > 0 seconds, got {interval_s!r}")
        if timed is None:
            assert fn is not None
            call = fn

            def timed(_now_ns: int) -> None:
                call()

        task = Task(name, round(interval_s * NS_PER_S), timed)
        if first_after_s > 0:
            task.next_due_ns = self.clock.now_ns() + round(first_after_s * NS_PER_S)
        with self._lock:
            if name in self._tasks:
                raise InvalidArgumentError(f"a task named {name!r} is already scheduled")
            self._tasks[name] = task
        self._wake.set()
        return task

    @property
    def tasks(self) -> dict[str, Task]:
        """The scheduled tasks by name."""
        with self._lock:
            return dict(self._tasks)

    def tick(self, now_ns: int | None = None) -> list[str]:
        """Run every task due at ``now_ns`` (default: the clock's now), in the order
        they were added; return their names."""
        with self._lock:
            now = self.clock.now_ns() if now_ns is None else now_ns
            ran: list[str] = []
            for task in list(self._tasks.values()):
                if not task.due(now):
                    continue
                try:
                    next_due = task.run(now)
                except Exception:  # one failing task must not stop the others
                    log.exception("scheduled task %s failed", task.name)
                    next_due = None
                task.last_run_ns = now
                task.next_due_ns = next_due if next_due is not None else now + task.interval_ns
                ran.append(task.name)
            return ran

    def due_now(self, name: str) -> None:
        """Make the task ``name`` due at the next tick and wake the background thread
        (e.g. the collector's, after a source was added)."""
        with self._lock:
            self._tasks[name].next_due_ns = None
        self._wake.set()

    def next_due_ns(self) -> int | None:
        """The earliest time a task is due, or ``None`` without tasks."""
        with self._lock:
            dues = [t.next_due_ns for t in self._tasks.values()]
        if any(d is None for d in dues):
            return self.clock.now_ns()
        return min((d for d in dues if d is not None), default=None)

    # -- the background thread ----------------------------------------------------------

    def start(self, name: str = "metricskit-scheduler", *, until_ns: int | None = None) -> None:
        """Call :meth:`tick` from a daemon thread until :meth:`stop` (or the clock
        reaches ``until_ns``)."""
        if self.running:
            raise StateError("the scheduler is already running")
        self._stop.clear()
        # _loop, not run: a stop() right after start() must not be undone
        self._thread = threading.Thread(target=self._loop, args=(until_ns,), name=name, daemon=True)
        self._thread.start()

    def run(self, until_ns: int | None = None) -> None:
        """Call :meth:`tick` in this thread until :meth:`stop` or the clock reaches
        ``until_ns``."""
        self._stop.clear()
        self._loop(until_ns)

    def _loop(self, until_ns: int | None) -> None:
        while not self._stop.is_set():
            if until_ns is not None and self.clock.now_ns() >= until_ns:
                break
            self.tick()
            due = self.next_due_ns()
            if until_ns is not None:
                due = until_ns if due is None else min(due, until_ns)
            delay = _MAX_SLEEP_S if due is None else (due - self.clock.now_ns()) / NS_PER_S
            if self._wake.wait(min(max(delay, 0.0), _MAX_SLEEP_S)):
                self._wake.clear()

    def wake(self) -> None:
        """Make the background thread tick now (e.g. after a test moved the clock)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread (e.g. one started with ``until_ns``)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background thread and wait for the tick in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
