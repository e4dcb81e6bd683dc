"""The storage contract every backend implements.

A backend implements five abstract methods (:meth:`~StorageBackend.write`,
:meth:`~StorageBackend.read`, :meth:`~StorageBackend.keys`,
:meth:`~StorageBackend.delete_before`, :meth:`~StorageBackend.stats`) and inherits the
rest; it may override the derived ones to push work down (a SQL ``WHERE``, Parquet
partition pruning).

Rules every backend keeps (``metricskit.testing.BackendConformance`` checks them):

- Times are int64 nanoseconds since the epoch, UTC; ranges are half-open
  ``[start_ns, end_ns)``.
- ``write`` accepts unsorted batches and repeated timestamps; the same (series, timestamp)
  written twice keeps the last write, within one batch and across batches.
- ``read`` returns samples sorted by time with unique timestamps, and an empty series for
  an unknown key or an empty range. NaN values round-trip.
- ``keys`` lists each series that holds at least one sample; a series whose samples were
  all deleted is no longer listed.
- Durability: once ``flush()`` has returned, every sample written before it survives a
  crash of the process. A crash never leaves the store unreadable.
- Errors from drivers (SQLAlchemy, pyarrow, ``OSError``) are translated into
  :class:`~metricskit.errors.BackendError` subclasses, ``raise ... from exc``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from metricskit.model import Selector, Series, SeriesKey

__all__ = ["MAX_NS", "MIN_NS", "Capabilities", "StorageBackend", "StorageStats"]

MIN_NS = -(2**63)
"""The earliest representable time; ``[MIN_NS, MAX_NS)`` is "all time"."""
MAX_NS = 2**63 - 1
"""The latest representable time (exclusive bound)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can promise; tests skip what a backend does not claim."""

    persistent: bool = False
    """Data survives closing and reopening the same URL."""
    deletes: bool = True
    """``delete_before`` works with a selector (else only whole-store retention)."""
    multiprocess: bool = False
    """Several processes may write to the same URL at once without losing samples."""


@dataclass(frozen=True)
class StorageStats:
    """Size of a store: samples held, series held, bytes used (on disk or in memory)."""

    samples: int
    series: int
    bytes: int

    def as_dict(self) -> dict[str, int]:
        """``{"samples": ..., "series": ..., "bytes": ...}``."""
        return asdict(self)


class StorageBackend(abc.ABC):
    """Abstract base class of storage backends; see the module docstring for the contract."""

    scheme: ClassVar[str]
    """The URL scheme this backend serves (``"memory"``, ``"sqlite"``, ...)."""
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> StorageBackend:
        """Open the backend a URL names; ``options`` are backend-specific keywords."""
        return cls(url, **options)  # type: ignore[call-arg]

    # -- the five methods a backend implements --------------------------------------

    @abc.abstractmethod
    def write(self, batch: Sequence[Series]) -> None:
        """Store every sample of every series in ``batch``; the last write of a (key, ts) wins."""

    @abc.abstractmethod
    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """Return the samples of exactly ``key`` in ``[start_ns, end_ns)``, sorted by time."""

    @abc.abstractmethod
    def keys(self) -> Iterator[SeriesKey]:
        """Yield every series key that holds at least one sample."""

    @abc.abstractmethod
    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Delete samples older than ``cutoff_ns`` of the selected series (all if ``None``).

        Return how many samples were removed. ``cutoff_ns=MAX_NS`` deletes everything selected.
        """

    @abc.abstractmethod
    def stats(self) -> StorageStats:
        """Report the samples, series and bytes the backend holds."""

    # -- derived; override to push filters down ---------------------------------------

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        """Yield the keys ``selector`` matches."""
        return (key for key in self.keys() if selector.matches(key))

    def query(self, selector: Selector, start_ns: int, end_ns: int) -> Iterator[Series]:
        """Yield the non-empty series ``selector`` matches, restricted to ``[start_ns, end_ns)``."""
        for key in sorted(self.select(selector)):
            series = self.read(key, start_ns, end_ns)
            if len(series):
                yield series

    def count(self, key: SeriesKey, start_ns: int = MIN_NS, end_ns: int = MAX_NS) -> int:
        """Return how many samples ``key`` holds in ``[start_ns, end_ns)``."""
        return len(self.read(key, start_ns, end_ns))

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        """Return the newest ``(timestamp_ns, value)`` of ``key`` in the range, or ``None``."""
        series = self.read(key, start_ns, end_ns)
        if not len(series):
            return None
        return int(series.timestamps[-1]), float(series.values[-1])

    def flush(self) -> None:  # noqa: B027 - a no-op is right for backends that write through
        """Make everything written so far durable; a no-op for write-through backends."""

    def close(self) -> None:  # noqa: B027 - a no-op is right for backends holding nothing
        """Flush and release resources; the backend is unusable afterwards."""

    def __enter__(self) -> StorageBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
