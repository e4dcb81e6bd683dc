"""Host metrics from psutil: CPU, memory, disk, load, network and process count.

Units (the seed's table, made exact):

- ``*_percent``: 0-100.
- ``*_gb``: gibibytes, 1024**3 bytes, the unit ``free -g``, ``df -BG`` and psutil's
  own docs use; 1 GB here is 1 073 741 824 bytes.
- ``system.network.bytes_sent`` / ``bytes_recv``: cumulative byte counters since boot
  over every interface (psutil corrects 32-bit wraparound); a store's rate turns them
  into bytes per second.
- ``system.cpu.usage_percent``: busy share of all CPUs over the time since this
  source's previous collection (not psutil's process-global ``cpu_percent`` state,
  which any other caller would reset). The first collection measures from the
  source's construction, waiting until at least ``min_cpu_window`` has passed so the
  first value is a measurement rather than ``0.0``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import psutil

from metricskit.catalog import SYSTEM_METRICS
from metricskit.collect.sources.base import Sample, Source
from metricskit.errors import InvalidMetricError

__all__ = ["SYSTEM_METRICS", "System"]

GIB = 1024**3


def _cpu_busy_total(t: object) -> tuple[float, float]:
    """(busy, total) CPU seconds, counted the way psutil.cpu_percent counts them."""
    total = sum(t)  # type: ignore[call-overload]
    # Linux counts guest time inside user/nice already
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)  # type: ignore[attr-defined]
    return total - idle, total


class System(Source):
    """psutil host metrics; see the module docstring for names and units.

    ``metrics`` limits what is measured (a subset of :data:`SYSTEM_METRICS`); psutil
    calls nothing asked for needs are skipped. ``disk_path`` is the filesystem whose
    usage is reported.
    """

    def __init__(
        self,
        disk_path: str = "/",
        *,
        metrics: Iterable[str] | None = None,
        min_cpu_window: float = 0.1,
        name: str = "system",
    ) -> None:
        if metrics is None:
            wanted = set(SYSTEM_METRICS)
        else:
            wanted = set(metrics)
            unknown = wanted.difference(SYSTEM_METRICS)
            if unknown:
                raise InvalidMetricError(
                    f"System cannot produce {sorted(unknown)}; known: {list(SYSTEM_METRICS)}"
                )
        self.disk_path = os.fspath(disk_path)
        self.metrics = tuple(m for m in SYSTEM_METRICS if m in wanted)
        self.name = name
        self.min_cpu_window = min_cpu_window
        self._steps = self._plan(wanted)
        self._cpu_prev = _cpu_busy_total(psutil.cpu_times())
        self._cpu_prev_at = time.monotonic()
        self._cpu_last = 0.0
        self._cpu_primed = False

    def _plan(self, wanted: set[str]) -> list[Callable[[list[Sample]], None]]:
        steps: list[Callable[[list[Sample]], None]] = []
        if "system.cpu.usage_percent" in wanted:
            steps.append(self._cpu)
        if wanted & {"system.memory.usage_percent", "system.memory.available_gb"}:
            steps.append(self._memory)
        if wanted & {"system.disk.usage_percent", "system.disk.free_gb"}:
            steps.append(self._disk)
        if "system.load.1min" in wanted:
            steps.append(lambda out: out.append(Sample("system.load.1min", os.getloadavg()[0])))
        if wanted & {"system.network.bytes_sent", "system.network.bytes_recv"}:
            steps.append(self._network)
        if "system.processes.count" in wanted:
            steps.append(
                lambda out: out.append(Sample("system.processes.count", float(len(psutil.pids()))))
            )
        return steps

    def collect(self) -> list[Sample]:
        """Measure every enabled metric now."""
        out: list[Sample] = []
        for step in self._steps:
            step(out)
        wanted = self.metrics
        if len(out) != len(wanted):
            out = [s for s in out if s.name in wanted]
        return out

    def cpu_percent(self) -> float:
        """Busy CPU share (0-100) since the previous call (or construction)."""
        if not self._cpu_primed:
            # a first read a few microseconds after construction would be 0/0
            remaining = self.min_cpu_window - (time.monotonic() - self._cpu_prev_at)
            if remaining > 0:
                time.sleep(remaining)
            self._cpu_primed = True
        busy, total = _cpu_busy_total(psutil.cpu_times())
        prev_busy, prev_total = self._cpu_prev
        d_total = total - prev_total
        if d_total <= 0:
            # called again within one clock tick: nothing new to measure
            return self._cpu_last
        pct = min(100.0, max(0.0, (busy - prev_busy) / d_total * 100.0))
        self._cpu_prev = (busy, total)
        self._cpu_prev_at = time.monotonic()
        self._cpu_last = pct
        return pct

    def _cpu(self, out: list[Sample]) -> None:
        out.append(Sample("system.cpu.usage_percent", self.cpu_percent()))

    @staticmethod
    def _memory(out: list[Sample]) -> None:
        vm = psutil.virtual_memory()
        out.append(Sample("system.memory.usage_percent", float(vm.percent)))
        out.append(Sample("system.memory.available_gb", vm.available / GIB))

    def _disk(self, out: list[Sample]) -> None:
        du = psutil.disk_usage(self.disk_path)
        out.append(Sample("system.disk.usage_percent", float(du.percent)))
        out.append(Sample("system.disk.free_gb", du.free / GIB))

    @staticmethod
    def _network(out: list[Sample]) -> None:
        io = psutil.net_io_counters()
        if io is None:  # a host without network interfaces
            return
        out.append(Sample("system.network.bytes_sent", float(io.bytes_sent)))
        out.append(Sample("system.network.bytes_recv", float(io.bytes_recv)))

    def __repr__(self) -> str:
        return f"System(disk_path={self.disk_path!r}, metrics={len(self.metrics)})"
