"""Derivations: one metric computed from another's recent samples in a store.

A :class:`Derivation` is a small declarative recipe::

    Derivation(target="business.ai_calls.cost_today", source="business.ai_cost",
               function="sum", window="today")

evaluated against anything with ``query(name=, start=, end=, tags=) -> list[Series]``
(a :class:`~metricskit.store.Store`). The collector's business source uses it, users
add their own KPIs with it, and the rules engine's recording rules are the same thing
read from YAML via :meth:`Derivation.from_dict`.

Semantics:

- The window is ``[now - window, now]``; ``window="today"`` is ``[local midnight, now]``
  where local midnight is in ``tz`` (an IANA name like ``"Europe/Berlin"``; ``None``
  means the system's local zone, DST-aware through the C library). A sample stamped
  exactly at midnight belongs to the new day.
- Series matching ``source`` (and every tag in ``tags``) are grouped by the tag keys in
  ``by`` (``None``: all into one group; a series lacking a key joins the group without
  it). The output has one value per group, tagged with that group's ``by`` tags.
- ``count``, ``sum``, ``avg``, ``min``, ``max`` pool the samples of a group. ``rate``
  is the pooled sum divided by the window in seconds (events per second; ``scale=3600``
  makes it per hour). ``last`` and ``increase`` are computed per series then added up
  (per-worker gauges sum to a total; counter increases add). ``increase`` treats a drop
  as a counter reset. NaN samples are ignored.
- With no samples, ``count``, ``sum``, ``rate`` and ``increase`` give ``0`` (only when
  ``by`` is ``None``: there is no group to name otherwise); the others give no value.
- The result is multiplied by ``scale``.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from metricskit._time import NS_PER_S, Clock, SystemClock, format_duration, parse_duration, to_ns
from metricskit.errors import ConfigError, MetricsKitError
from metricskit.model import EMPTY_TAGS, Series, Tags, validate_name, validate_tags

__all__ = ["FUNCTIONS", "Derivation", "QueryableStore", "local_midnight_ns"]

FloatArray = npt.NDArray[np.float64]


class QueryableStore(Protocol):
    """What a derivation reads from: :meth:`metricskit.store.Store.query`'s shape."""

    def query(
        self,
        name: str | None = None,
        start: Any = None,
        end: Any = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        """Series named ``name`` with the given tags, samples in ``[start, end)``."""
        ...


def _nonnan(v: FloatArray) -> FloatArray:
    return v[~np.isnan(v)]


def _increase(v: FloatArray) -> float:
    v = _nonnan(v)
    if v.size < 2:
        return 0.0
    d = np.diff(v)
    # a drop is a reset: the counter restarted from zero and now reads v[i]
    return float(np.where(d >= 0, d, v[1:]).sum())


def _last(v: FloatArray) -> float | None:
    v = _nonnan(v)
    return float(v[-1]) if v.size else None


def _pooled(reduce: Callable[[FloatArray], float]) -> Callable[[FloatArray], float | None]:
    def apply(v: FloatArray) -> float | None:
        v = _nonnan(v)
        return reduce(v) if v.size else None

    return apply


_POOLED: dict[str, Callable[[FloatArray], float | None]] = {
    "count": lambda v: float(_nonnan(v).size),
    "sum": lambda v: float(_nonnan(v).sum()),
    "rate": lambda v: float(_nonnan(v).sum()),  # divided by the window afterwards
    "avg": _pooled(lambda v: float(v.mean())),
    "min": _pooled(lambda v: float(v.min())),
    "max": _pooled(lambda v: float(v.max())),
}
_PER_SERIES: dict[str, Callable[[FloatArray], float | None]] = {
    "last": _last,
    "increase": _increase,
}
FUNCTIONS = tuple(sorted([*_POOLED, *_PER_SERIES]))
"""The functions a derivation may use."""
_ZERO_WHEN_EMPTY = frozenset({"count", "sum", "rate", "increase"})
_FIELDS = ("target", "source", "function", "window", "scale", "by", "tags", "tz")


def local_midnight_ns(now_ns: int, tz: str | None = None) -> int:
    """The start of the local day containing ``now_ns``, in ns since the epoch.

    ``tz`` is an IANA zone name; ``None`` uses the system's local zone (``TZ``).
    """
    secs = now_ns // NS_PER_S
    if tz is None:
        lt = time.localtime(secs)
        # isdst=-1: let the C library pick the offset midnight had, not the current one
        return int(time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))) * NS_PER_S
    zone = ZoneInfo(tz)
    local = _dt.datetime.fromtimestamp(secs, zone)
    return to_ns(_dt.datetime(local.year, local.month, local.day, tzinfo=zone))


def _fail(target: object, message: str) -> ConfigError:
    return ConfigError(f"derivation {target!r}: {message}")


@dataclass(frozen=True)
class Derivation:
    """Compute ``target`` from ``source``'s samples in a window; see the module docstring.

    ``window`` is ``"today"`` or a duration (``"1h"``, ``300``, a ``timedelta``);
    ``by`` is ``None`` or tag keys to group by; ``tags`` filters the source series;
    ``tz`` is used by ``"today"``. Invalid values raise
    :class:`~metricskit.errors.ConfigError` naming the derivation and the field.
    """

    target: str
    source: str
    function: str
    window: Any = "1h"
    scale: float = 1.0
    by: tuple[str, ...] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    tz: str | None = None
    window_ns: int | None = field(init=False, repr=False, compare=False)
    """The window in ns, or ``None`` for ``"today"``."""

    def __post_init__(self) -> None:
        t = self.target
        try:
            validate_name(self.target)
            validate_name(self.source)
        except MetricsKitError as exc:
            raise _fail(t, str(exc)) from None
        if self.target == self.source:
            raise _fail(t, "target and source are the same metric")
        if self.function not in FUNCTIONS:
            hint = difflib.get_close_matches(str(self.function), FUNCTIONS, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise _fail(t, f"unknown function {self.function!r}{did}; use one of {FUNCTIONS}")
        if self.window == "today":
            window_ns: int | None = None
        else:
            try:
                window_ns = parse_duration(self.window)
            except MetricsKitError as exc:
                raise _fail(t, f"window: {exc} (or 'today')") from None
            if window_ns == 0:
                raise _fail(t, "window must be longer than 0")
        object.__setattr__(self, "window_ns", window_ns)
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise _fail(t, f"scale must be a number, not {self.scale!r}")
        if not math.isfinite(self.scale):
            raise _fail(t, f"scale must be finite, not {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        if self.by is not None:
            by = (self.by,) if isinstance(self.by, str) else tuple(self.by)
            if not by or not all(isinstance(k, str) and k.isidentifier() for k in by):
                raise _fail(t, f"by must be tag keys (identifiers), not {self.by!r}")
            object.__setattr__(self, "by", by)
        try:
            object.__setattr__(self, "tags", validate_tags(self.tags or None, self.source))
        except MetricsKitError as exc:
            raise _fail(t, f"tags: {exc}") from None
        if self.tz is not None:
            try:
                ZoneInfo(self.tz)
            except (ZoneInfoNotFoundError, ValueError, TypeError):
                raise _fail(t, f"unknown time zone {self.tz!r}; use an IANA name") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Derivation:
        """Build from a plain mapping (a YAML recording rule), with the same field names."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a derivation must be a mapping, not {type(data).__name__}")
        target = data.get("target", "<no target>")
        for key in data:
            if key not in _FIELDS:
                hint = difflib.get_close_matches(str(key), _FIELDS, n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise _fail(target, f"unknown key {key!r}{did}; known keys: {list(_FIELDS)}")
        missing = [k for k in ("target", "source", "function") if k not in data]
        if missing:
            raise _fail(target, f"missing required key(s) {missing}")
        tags = data.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise _fail(target, f"tags must be a mapping, not {tags!r}")
        return cls(**{k: data[k] for k in _FIELDS if k in data and k != "tags"}, tags=tags)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data; ``from_dict(d.to_dict()) == d``."""
        out: dict[str, Any] = {
            "target": self.target,
            "source": self.source,
            "function": self.function,
            "window": "today" if self.window_ns is None else format_duration(self.window_ns),
            "scale": self.scale,
        }
        if self.by is not None:
            out["by"] = list(self.by)
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.tz is not None:
            out["tz"] = self.tz
        return out

    def bounds(self, now_ns: int) -> tuple[int, int]:
        """The half-open ``[start_ns, end_ns)`` read for an evaluation at ``now_ns``."""
        if self.window_ns is None:
            start = local_midnight_ns(now_ns, self.tz)
        else:
            start = now_ns - self.window_ns
        return start, now_ns + 1

    def evaluate(
        self, store: QueryableStore, now_ns: int | None = None, *, clock: Clock | None = None
    ) -> dict[Tags, float]:
        """The target's value per output group at ``now_ns`` (default: ``clock``'s now)."""
        if now_ns is None:
            now_ns = (clock or SystemClock()).now_ns()
        start, end = self.bounds(now_ns)
        found = store.query(
            name=self.source,
            start=np.datetime64(start, "ns"),
            end=np.datetime64(end, "ns"),
            tags=dict(self.tags) or None,
        )
        return self.reduce(found, window_seconds=(now_ns - start) / NS_PER_S)

    def reduce(self, found: Iterable[Series], window_seconds: float) -> dict[Tags, float]:
        """Apply the function to already-read series (``window_seconds`` is for ``rate``)."""
        groups: dict[Tags, list[FloatArray]] = {}
        for s in found:
            groups.setdefault(self._group(s.tags), []).append(s.values)
        if not groups and self.by is None and self.function in _ZERO_WHEN_EMPTY:
            groups[EMPTY_TAGS] = []
        out: dict[Tags, float] = {}
        for key, arrays in groups.items():
            value = self._apply(arrays, window_seconds)
            if value is not None:
                out[key] = value * self.scale
        return out

    def _apply(self, arrays: Sequence[FloatArray], window_seconds: float) -> float | None:
        per_series = _PER_SERIES.get(self.function)
        if per_series is not None:
            parts = [p for p in (per_series(a) for a in arrays) if p is not None]
            if not parts:
                return 0.0 if self.function in _ZERO_WHEN_EMPTY else None
            return float(sum(parts))
        pooled = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.float64)
        value = _POOLED[self.function](pooled)
        if value is not None and self.function == "rate":
            if window_seconds <= 0:  # "today" evaluated exactly at midnight
                return None
            value /= window_seconds
        return value

    def _group(self, tags: Tags) -> Tags:
        if self.by is None:
            return EMPTY_TAGS
        return Tags._trusted(tuple((k, v) for k, v in tags.items_tuple if k in self.by))
