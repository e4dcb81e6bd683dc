"""The Recorder's engine: the buffered-sample bound, back-pressure and the flush thread.

The hot path (``BoundSeries.record`` in :mod:`metricskit.recorder`) takes no lock: it
draws a ticket from :attr:`RecordBuffer.ticks` (an ``itertools.count``, atomic under the
GIL) and, while the ticket is below :attr:`RecordBuffer.threshold`, extends its series'
flat list by ``(t_ns, value)`` (one ``list.extend`` call, atomic under the GIL, so the
list always holds whole pairs; the list and its conversion to arrays are
:mod:`metricskit._series_buffer`'s). Everything else happens here, under ``_lock`` and only
when a ticket reaches the threshold: waking the flusher at ``batch_size`` pending
samples, waiting for room or dropping samples once ``max_buffer`` are held, refusing
samples after close.

Back-pressure. When ``max_buffer`` samples are held because the writer is behind (the
store works, it is just slower than the callers), the recording call waits on ``_room``
for the writer to finish its write instead of dropping, for up to ``max_wait`` seconds
without a write completing.
Samples are dropped only when the store is failing (a call never waits on a store that is
down), when that wait runs out (a store that hangs), or when the flush thread itself
records; each drop is counted, logged with its reason and written as
``metricskit.recorder.dropped``.

Accounting (all under ``_lock``)::

    pending = tickets drawn - _base        samples appended and not yet taken by a flush
    _held   = samples taken by the flusher that are not durable yet (being written,
              or kept after a failed write for the next attempt)
    pending + _held <= max_buffer          (within a ticket per concurrent thread)

``_base`` moves up when a flush takes samples or a sample is dropped, and down when
``record_many`` appends a chunk. The threshold is recomputed whenever one of them moves.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from metricskit._series_buffer import Chunk, SeriesBuffer, merge_batches, sample_count, to_series
from metricskit._time import Clock
from metricskit.errors import BackendError, MetricsKitError
from metricskit.model import Series, SeriesKey

__all__ = [
    "Chunk",
    "Deriver",
    "RecordBuffer",
    "SeriesBuffer",
    "StoreLike",
    "merge_batches",
    "to_series",
]

logger = logging.getLogger("metricskit.recorder")

_WARN_EVERY_S = 10.0
DROPPED_METRIC = "metricskit.recorder.dropped"


class StoreLike(Protocol):
    """What a Recorder writes to: a :class:`metricskit.store.Store` or anything alike."""

    def write(self, batch: Sequence[Series]) -> None:
        """Store a batch of series."""
        ...

    def flush(self) -> None:
        """Return once everything written is durable."""
        ...


class Deriver(Protocol):
    """Series computed from each flushed batch and written with it (histogram totals)."""

    def wants(self, key: SeriesKey) -> bool:
        """True if ``key``'s samples feed :meth:`derive`."""
        ...

    def derive(self, batch: Sequence[Series]) -> list[Series]:
        """The series to write for the wanted series of ``batch``; raises leave no trace."""
        ...


class _RateLimitedWarning:
    """Log a warning at most once per ``_WARN_EVERY_S``; callers put running totals in it."""

    def __init__(self) -> None:
        self._last = -float("inf")

    def __call__(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= _WARN_EVERY_S:
            self._last = now
            logger.warning(msg, *args)


class RecordBuffer:
    """Buffers samples per series and writes them to a store in batches from a thread."""

    def __init__(
        self,
        store: StoreLike,
        *,
        batch_size: int,
        flush_interval: float | None,
        max_buffer: int,
        clock: Clock,
        self_key: SeriesKey,
        max_wait: float = 0.0,
        deriver: Deriver | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.max_wait = max_wait
        self.flush_interval = flush_interval
        self._clock = clock
        self._self_key = self_key
        self.ticks = itertools.count(1)
        self.threshold = 0
        self.closed = False
        self.dropped = 0
        self._dropped_written = 0
        self._base = 0
        self._held = 0
        self._woken = False
        self._retained: list[list[Series]] = []
        # Series drained but not yet passed to ``derive`` (it failed, e.g. reading the
        # store): derived exactly once, on the first flush that gets that far.
        self._deriver = deriver
        self._underived: list[Series] = []
        self._failing = False
        self._last_error = ""
        self._stalled = False
        self._writes = 0
        self._buffers: dict[SeriesKey, SeriesBuffer] = {}
        self._lock = threading.Lock()
        # Notified (under _lock) whenever room may have appeared or waiting became futile:
        # a write succeeded, the store started failing, or the Recorder closed.
        self._room = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._warn_drop = _RateLimitedWarning()
        self._warn_fail = _RateLimitedWarning()
        with self._lock:
            self._recompute()
        self._thread = threading.Thread(
            target=self._run, name="metricskit-recorder-flush", daemon=True
        )
        self._thread.start()

    # -- buffers and the bound ----------------------------------------------------------

    def buffer(self, key: SeriesKey) -> SeriesBuffer:
        """Return the buffer of ``key``, creating it on first use."""
        with self._lock:
            buf = self._buffers.get(key)
            if buf is None:
                buf = self._buffers[key] = SeriesBuffer(key)
            return buf

    def _recompute(self) -> None:
        # Caller holds _lock. Below the threshold the hot path appends without asking;
        # at it, append_slow decides (wake the flusher, drop, or refuse after close).
        if self.closed:
            self.threshold = -1
            return
        room = self.max_buffer - self._held + 1
        self.threshold = self._base + (room if self._woken else min(self.batch_size, room))

    def _closed_error(self) -> MetricsKitError:
        return MetricsKitError("this Recorder is closed; create a new one to record again")

    def append_slow(self, buf: SeriesBuffer, t: int, value: float, ticket: int) -> None:
        """The hot path's fallback once ``ticket`` reached the threshold."""
        with self._lock:
            if self.closed:
                raise self._closed_error()
            if ticket - self._base + self._held > self.max_buffer:
                reason = self._wait_for_room(
                    lambda: ticket - self._base + self._held <= self.max_buffer
                )
                if reason is not None:
                    self._base += 1
                    self._drop(1, reason)
                    self._recompute()
                    return
            buf.items.extend((t, value))
            self._wake_if_full(ticket - self._base)
            self._recompute()

    def _stalled_reason(self) -> str:
        return f"the store made no room within max_wait={self.max_wait:g}s"

    def _pending_locked(self) -> int:
        # Caller holds _lock. Drawing a ticket is the only way to read the count; it is
        # accounted as taken.
        ticket = next(self.ticks)
        self._base += 1
        return ticket - self._base

    def _wait_for_room(self, has_room: Callable[[], bool]) -> str | None:
        """Wait (caller holds _lock) until ``has_room()``; return why not, or ``None``."""
        if self._failing:
            return f"the store is failing: {self._last_error}"
        if self._stalled:
            return self._stalled_reason()
        if threading.current_thread() is self._thread:
            return "recorded from the flush thread, which cannot wait for itself"
        deadline = time.monotonic() + self.max_wait
        writes = self._writes
        # The writer must run for room to appear, whatever batch_size says.
        self._woken = True
        self._wake.set()
        while not has_room():
            if self.closed:
                return "the Recorder closed"
            if self._failing:
                return f"the store is failing: {self._last_error}"
            if self._writes != writes:
                # The writer is making progress (other callers took the room it made):
                # max_wait bounds a wait on a store that does nothing, not a long queue.
                writes = self._writes
                deadline = time.monotonic() + self.max_wait
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Until a write completes, later calls drop at once: a store that hangs
                # costs the application one max_wait, not one per call.
                self._stalled = True
                return self._stalled_reason()
            self._room.wait(remaining)
        return None

    def append_chunk(
        self, buf: SeriesBuffer, ts: npt.NDArray[np.int64], vs: npt.NDArray[np.float64]
    ) -> None:
        """Append ``record_many``'s validated arrays, in parts as room appears.

        What finds no room (see :meth:`_wait_for_room`) is dropped.
        """
        with self._lock:
            if self.closed:
                raise self._closed_error()
            start, n = 0, len(ts)
            while start < n:
                pending = self._pending_locked()
                room = self.max_buffer - self._held - pending
                if room <= 0:
                    reason = self._wait_for_room(
                        lambda: self.max_buffer - self._held - self._pending_locked() > 0
                    )
                    if reason is None:
                        continue
                    self._drop(n - start, reason)
                    break
                keep = min(room, n - start)
                buf.chunky = True
                whole = start == 0 and keep == n
                chunk = (
                    Chunk(ts, vs)
                    if whole
                    else Chunk(ts[start : start + keep], vs[start : start + keep])
                )
                buf.items.extend((chunk, None))
                self._base -= keep
                self._wake_if_full(pending + keep)
                start += keep
            self._recompute()

    def _wake_if_full(self, pending: int) -> None:
        if pending >= self.batch_size and not self._woken:
            self._woken = True
            self._wake.set()

    def _drop(self, n: int, reason: str) -> None:
        self.dropped += n
        self._warn_drop(
            "metricskit recorder: %d samples buffered (max_buffer) and %s; dropped %d samples "
            "so far",
            self.max_buffer,
            reason,
            self.dropped,
        )

    def pending(self) -> int:
        """Samples recorded and not yet durable (buffered, being written or kept for retry)."""
        with self._lock:
            return self._pending_locked() + self._held

    # -- flushing -----------------------------------------------------------------------

    def _drain(self) -> list[Series]:
        taken = [(buf, buf.take()) for buf in list(self._buffers.values())]
        taken = [(buf, items) for buf, items in taken if items]
        count = sum(sample_count(items, buf.chunky) for buf, items in taken)
        with self._lock:
            self._base += count
            self._held += count
            self._woken = False
            self._recompute()
        return [to_series(buf.key, items, buf.chunky) for buf, items in taken]

    def flush(self) -> int:
        """Write everything recorded so far and make it durable; return samples written.

        Raises :class:`BackendError` if the store fails; the samples stay held for the next
        attempt. Serialised with every other flush.
        """
        with self._flush_lock:
            batch = self._drain()
            if batch:
                self._retained.append(batch)
                if self._deriver is not None:
                    self._underived += [s for s in batch if self._deriver.wants(s.key)]
            dropped = self.dropped
            if not self._retained and dropped == self._dropped_written:
                return 0
            try:
                if self._underived and self._deriver is not None:
                    derived = self._deriver.derive(self._underived)
                    self._underived = []
                    if derived:
                        self._retained.append(derived)
                for held_batch in self._retained:
                    self.store.write(held_batch)
                if dropped != self._dropped_written:
                    self.store.write([self._dropped_series(dropped)])
                self.store.flush()
            except Exception as exc:
                with self._lock:
                    self._failing = True
                    self._last_error = repr(exc)
                    self._room.notify_all()
                if len(self._retained) > 1:
                    # One batch however many attempts failed: a store that comes back
                    # gets one write, not one per failed attempt.
                    self._retained = [merge_batches(self._retained)]
                if isinstance(exc, BackendError):
                    raise
                raise BackendError(f"the store failed to write: {exc!r}") from exc
            self._retained.clear()
            self._dropped_written = dropped
            with self._lock:
                written, self._held = self._held, 0
                self._stalled = False
                self._writes += 1
                self._recompute()
                self._room.notify_all()
            if self._failing:
                self._failing = False
                logger.warning(
                    "metricskit recorder: the store works again; wrote %d samples "
                    "held since it failed",
                    written,
                )
            return written

    def _dropped_series(self, dropped: int) -> Series:
        return Series(
            self._self_key,
            np.array([self._clock.now_ns()], dtype=np.int64),
            np.array([float(dropped)], dtype=np.float64),
        )

    def _run(self) -> None:
        interval = self.flush_interval
        retry_delay = interval if interval is not None else 1.0
        while not self._stop.is_set():
            self._wake.wait(interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.flush()
            except BackendError as exc:
                self._warn_fail(
                    "metricskit recorder: the store failed (%s); %d samples held for retry",
                    exc,
                    self._held,
                )
                # Wait out the retry delay even if batch_size wakes us: hammering a store
                # that is down helps nobody, and max_buffer bounds what piles up meanwhile.
                self._stop.wait(retry_delay)
            except Exception:
                logger.exception("metricskit recorder: unexpected error in the flush thread")
                self._stop.wait(retry_delay)

    def close(self) -> None:
        """Refuse new samples, stop the thread, flush; log (not raise) what could not be saved."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._recompute()
            self._room.notify_all()
        self._stop.set()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        try:
            self.flush()
        except BackendError as exc:
            with self._lock:
                lost, self._held = self._held, 0
                self.dropped += lost
            self._retained.clear()
            self._underived = []
            logger.error(
                "metricskit recorder: closing, the store failed (%s); %d samples were lost",
                exc,
                lost,
            )
