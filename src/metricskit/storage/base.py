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
import functools
import inspect
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from metricskit.errors import InvalidArgumentError
from metricskit.model import Selector, Series, SeriesKey

__all__ = [
    "MAX_NS",
    "MIN_NS",
    "Capabilities",
    "KeyIndex",
    "StorageBackend",
    "StorageStats",
    "key_order",
    "select_indexed",
]

MIN_NS = -(2**63)
"""The earliest representable time; ``[MIN_NS, MAX_NS)`` is "all time"."""
MAX_NS = 2**63 - 1
"""The latest representable time (exclusive bound)."""

_FIRST_PROBE_NS = 3_600 * 10**9


def key_order(key: SeriesKey) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sort key ordering series keys as ``sorted(keys)`` does, compared in C.

    ``SeriesKey``'s own ordering goes through ``Tags.__lt__`` in Python; sorting a
    thousand keys with it costs milliseconds, with this a fraction of one.
    """
    return key.name, key.tags.items_tuple


class KeyIndex:
    """An immutable set of series keys with name and (tag, value) indexes.

    Selecting from it touches only the keys that can match (the smallest of the name's
    and each tag pair's posting sets), instead of testing every key; an exact selector
    with a name is one set lookup. Backends that can tell when their key set changed
    build one per change and keep it (the ``parquet://`` backend does).
    """

    __slots__ = ("_by_name", "_by_tag", "keys")

    def __init__(self, keys: Iterable[SeriesKey]) -> None:
        self.keys: frozenset[SeriesKey] = frozenset(keys)
        self._by_name: dict[str, set[SeriesKey]] = {}
        self._by_tag: dict[tuple[str, str], set[SeriesKey]] = {}
        for key in self.keys:
            self._by_name.setdefault(key.name, set()).add(key)
            for pair in key.tags.items_tuple:
                self._by_tag.setdefault(pair, set()).add(key)

    def select(self, selector: Selector) -> list[SeriesKey]:
        """The keys ``selector`` matches, sorted."""
        found = select_indexed(selector, self.keys, self._by_name, self._by_tag)
        return sorted(found, key=key_order)


def select_indexed(
    selector: Selector,
    keys: Collection[SeriesKey],
    by_name: Mapping[str, set[SeriesKey]],
    by_tag: Mapping[tuple[str, str], set[SeriesKey]],
) -> list[SeriesKey]:
    """The keys ``selector`` matches, from a name and a (tag, value) posting index.

    Touches only the smallest posting set's keys (intersected with the others); an exact
    selector with a name is one lookup in ``keys``.
    """
    if selector.exact and selector.name is not None:
        key = SeriesKey(selector.name, selector.tags)
        return [key] if key in keys else []
    pools: list[set[SeriesKey]] = []
    if selector.name is not None:
        pools.append(by_name.get(selector.name, set()))
    pools.extend(by_tag.get(pair, set()) for pair in selector.tags.items_tuple)
    if not pools:
        found: Iterable[SeriesKey] = keys
    else:
        pools.sort(key=len)
        found = pools[0].intersection(*pools[1:]) if len(pools) > 1 else pools[0]
    if selector.exact:  # no name: the tags must be exactly these
        return [k for k in found if k.tags == selector.tags]
    return list(found)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can promise; tests skip what a backend does not claim."""

    persistent: bool = False
    """Data survives closing and reopening the same URL."""
    deletes: bool = True
    """``delete_before`` works with a selector (else only whole-store retention)."""
    multiprocess: bool = False
    """Several processes may write to the same URL at once without losing samples."""
    bit_exact: bool = True
    """Every float64 reads back bit for bit: NaN, -0.0, +-inf and subnormals included."""


@dataclass(frozen=True)
class StorageStats:
    """Size of a store: samples held, series held, bytes used (on disk or in memory)."""

    samples: int
    series: int
    bytes: int

    def to_dict(self) -> dict[str, int]:
        """``{"samples": ..., "series": ..., "bytes": ...}``."""
        return asdict(self)


@functools.cache
def _known_options(cls: type) -> tuple[str, ...] | None:
    """The keyword options ``cls.__init__`` takes (``None``: it takes any ``**options``)."""
    # __init__'s, not the class's: a __new__ taking **options (SQLBackend's) would hide it
    init = next(vars(base)["__init__"] for base in cls.__mro__ if "__init__" in vars(base))
    params = list(inspect.signature(init).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(sorted(p.name for p in params if p.kind in kinds and p.name != "url"))


def check_options(cls: type, url: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidArgumentError` if ``options`` holds a name ``cls`` does not take.

    A misspelt option (``flush_sample=``) would otherwise surface as a bare ``TypeError``
    from deep inside ``open_store``, without saying which options exist.
    """
    known = _known_options(cls)
    unknown = sorted(set(options) - set(known)) if known is not None else []
    if unknown:
        scheme = url.split("://", 1)[0] if "://" in url else getattr(cls, "scheme", "?")
        raise InvalidArgumentError(
            f"{scheme}:// does not take the option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; its options are: {', '.join(known or ()) or 'none'}"
        )


class StorageBackend(abc.ABC):
    """Abstract base class of storage backends; see the module docstring for the contract."""

    scheme: ClassVar[str]
    """The URL scheme this backend serves (``"memory"``, ``"sqlite"``, ...)."""
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> StorageBackend:
        """Open the backend a URL names; ``options`` are backend-specific keywords.

        An option the backend's ``__init__`` does not take raises
        :class:`~metricskit.errors.InvalidArgumentError` naming it and the known ones.
        """
        check_options(cls, url, options)
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
        for key in sorted(self.select(selector), key=key_order):
            series = self.read(key, start_ns, end_ns)
            if len(series):
                yield series

    def names(self) -> set[str]:
        """The distinct metric names of the stored series (a query engine's first filter)."""
        return {key.name for key in self.keys()}

    def read_many(self, keys: Sequence[SeriesKey], start_ns: int, end_ns: int) -> list[Series]:
        """``[read(key, start_ns, end_ns) for key in keys]``: each series, empty or not.

        Override to read many series in one go (one SQL statement, one lock).
        """
        return [self.read(key, start_ns, end_ns) for key in keys]

    def count(self, key: SeriesKey, start_ns: int = MIN_NS, end_ns: int = MAX_NS) -> int:
        """Return how many samples ``key`` holds in ``[start_ns, end_ns)``."""
        return len(self.read(key, start_ns, end_ns))

    def last(self, key: SeriesKey, start_ns: int, end_ns: int) -> tuple[int, float] | None:
        """Return the newest ``(timestamp_ns, value)`` of ``key`` in the range, or ``None``.

        This default reads windows ending at ``end_ns`` that double in length (the first
        reaching an hour back from ``end_ns`` or from now, whichever is earlier) until one
        holds a sample or the window covers ``start_ns``. A series sampled recently costs
        one small read however long its history; override with a real pushdown.
        """
        if start_ns >= end_ns:
            return None
        anchor = min(end_ns, time.time_ns())
        width = _FIRST_PROBE_NS
        while True:
            lo = max(start_ns, anchor - width)
            series = self.read(key, lo, end_ns)
            if len(series):
                return int(series.timestamps[-1]), float(series.values[-1])
            if lo <= start_ns:
                return None
            width *= 2

    def flush(self) -> None:  # noqa: B027 - a no-op is right for backends that write through
        """Make everything written so far durable; a no-op for write-through backends."""

    def close(self) -> None:  # noqa: B027 - a no-op is right for backends holding nothing
        """Flush and release resources; the backend is unusable afterwards."""

    def __enter__(self) -> StorageBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
