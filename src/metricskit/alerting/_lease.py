"""One evaluator per store: heartbeats in the store itself, and who leads.

Two processes evaluating the rules of one store (``metricskit start`` beside an
application running ``MonitoringService().start_monitoring()``, several hosts on one
PostgreSQL store) would each send every notification. So each evaluating engine writes
a heartbeat to :data:`LEASE_METRIC`, tagged ``evaluator`` (``host:pid``) and ``started``
(the process' start, ns), its value the lease in seconds (3 evaluation intervals). A
heartbeat is fresh while younger than its lease; of the fresh ones the earliest
``started`` leads, ties by ``evaluator``, so every process reaches the same answer from
the same samples and a newcomer never takes over from a running leader.

A process on this host that no longer exists is stale at once (a restart does not wait
for the lease), and so is one whose pid this process now has; :func:`release` writes a
lease of 0 when an engine stops. Engines of one process share its identity: they all
lead or all stand by.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import psutil

from metricskit._time import NS_PER_S
from metricskit.model import Series, SeriesKey
from metricskit.store import Store

__all__ = ["DEFAULT_INTERVAL_S", "LEASE_METRIC", "Evaluator", "heartbeat", "leader", "release"]

logger = logging.getLogger("metricskit.alerting.engine")

LEASE_METRIC = "metricskit.alerting.evaluator"
"""The series evaluators' heartbeats are written to."""
DEFAULT_INTERVAL_S = 15.0
"""The interval the lease assumes when ``evaluate()`` is called by hand (``start``'s
default)."""
LEASES_PER_INTERVAL = 3
"""A heartbeat is fresh for this many evaluation intervals."""


@dataclass(frozen=True, order=True)
class Evaluator:
    """A process evaluating rules: ordered by start time, then id (the leader is the least)."""

    started_ns: int
    id: str

    @property
    def host(self) -> str:
        """The host part of the id."""
        return self.id.rpartition(":")[0]

    @property
    def pid(self) -> int | None:
        """The pid part of the id, if it has one."""
        tail = self.id.rpartition(":")[2]
        return int(tail) if tail.isdigit() else None

    def key(self) -> SeriesKey:
        """This evaluator's heartbeat series."""
        return SeriesKey.of(LEASE_METRIC, {"evaluator": self.id, "started": str(self.started_ns)})


_PROCESS = Evaluator(time.time_ns(), f"{socket.gethostname()}:{os.getpid()}")
"""This process (taken at import: every engine of the process has the same identity)."""


def this_process() -> Evaluator:
    """The identity of the running process (after a fork, of the child)."""
    global _PROCESS
    if _PROCESS.pid != os.getpid():
        _PROCESS = Evaluator(time.time_ns(), f"{socket.gethostname()}:{os.getpid()}")
    return _PROCESS


def heartbeat(store: Store, me: Evaluator, now_ns: int, interval_s: float | None) -> None:
    """Write ``me``'s heartbeat at ``now_ns``, fresh for 3 intervals (default 15 s)."""
    _write(store, me, now_ns, LEASES_PER_INTERVAL * (interval_s or DEFAULT_INTERVAL_S))


def release(store: Store, me: Evaluator, now_ns: int) -> None:
    """Give up the lead at ``now_ns``: a lease of 0, so a standby takes over at once."""
    _write(store, me, now_ns, 0.0)


def _write(store: Store, me: Evaluator, now_ns: int, lease_s: float) -> None:
    ts = np.array([now_ns], dtype=np.int64)
    try:
        store.write([Series(me.key(), ts, np.array([lease_s], dtype=np.float64))])
        store.flush()
    except Exception as exc:  # the next evaluation writes again; a standby takes over
        logger.error("rules: could not write the evaluator heartbeat: %s", exc)


def leader(store: Store, me: Evaluator | None, now_ns: int) -> Evaluator | None:
    """The evaluator that leads at ``now_ns``: the least fresh heartbeat (``me`` counts
    as fresh); ``None`` when there is none. A store that cannot be read raises."""
    fresh = [] if me is None else [me]
    for key, ts, lease_s in store.latest(LEASE_METRIC):
        other = _evaluator_of(key)
        if other is None or other == me:
            continue
        if ts + lease_s * NS_PER_S <= now_ns or not _may_live(other):
            continue
        fresh.append(other)
    return min(fresh, default=None)


def _evaluator_of(key: SeriesKey) -> Evaluator | None:
    ident, started = key.tags.get("evaluator"), key.tags.get("started")
    if ident is None or started is None or not started.lstrip("-").isdigit():
        logger.warning("rules: ignoring an evaluator heartbeat without its tags: %r", key)
        return None
    return Evaluator(int(started), ident)


def _may_live(other: Evaluator) -> bool:
    """False for a process of this host that is gone: its heartbeat need not age out."""
    here = this_process()
    pid = other.pid
    if other.host != here.host or pid is None:
        return True
    if pid == os.getpid():
        return other.started_ns == here.started_ns  # else an earlier process with this pid
    return psutil.pid_exists(pid)
