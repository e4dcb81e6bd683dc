"""A clock that moves only when told to, for tests that must not sleep."""

from __future__ import annotations

import threading
from typing import Any

from metricskit._time import NS_PER_S, TimeLike, parse_duration, to_ns

__all__ = ["ManualClock"]


class ManualClock:
    """A :class:`~metricskit._time.Clock` whose time is set and advanced by the test.

    ``ManualClock(start=1_700_000_000)``; ``clock.advance("30s")``; ``clock.set(t)``.
    Thread-safe, so a background thread may read it while the test advances it.
    """

    def __init__(self, start: TimeLike = 1_700_000_000) -> None:
        self._ns = to_ns(start)
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        """The current time in ns."""
        with self._lock:
            return self._ns

    def now(self) -> float:
        """The current time in seconds."""
        return self.now_ns() / NS_PER_S

    def advance(self, by: str | float | Any) -> int:
        """Move forward by a duration (``"5m"``, seconds, timedelta); return the new ns."""
        step = parse_duration(by)
        with self._lock:
            self._ns += step
            return self._ns

    def set(self, t: TimeLike) -> None:
        """Jump to ``t`` (backwards too: clocks do that)."""
        with self._lock:
            self._ns = to_ns(t)

    def __repr__(self) -> str:
        return f"ManualClock(now_ns={self._ns})"
