"""The data model: a series is a metric name plus tags, holding numpy columns.

- Names follow ``category.component.metric_name``: dot-separated parts of letters,
  digits, ``_`` and ``:``, the first part starting with a letter or ``_``
  (``system.load.1min`` is fine, ``1system.x`` and ``a..b`` are not).
- Tag keys are identifiers of at most :data:`MAX_TAG_KEY_LENGTH` characters that do not
  start with ``__`` (reserved, as in Prometheus); tag values are strings of printable
  text: not empty or only whitespace, at most :data:`MAX_TAG_VALUE_LENGTH` characters,
  no control characters (``\\n``, ``\\t``, NUL, ...), no line/paragraph separators and no
  lone surrogates (text that cannot be encoded as UTF-8). A series has at most
  :data:`MAX_TAGS` tags. Nothing is silently renamed or converted: a bad name, key or
  value raises :class:`~metricskit.errors.InvalidMetricError`. Every backend gets the
  same checks, because they run here, before any backend sees the key.
- Timestamps are int64 nanoseconds since the epoch (UTC); values are float64. NaN is a
  value; +-inf is rejected unless the caller opts in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from metricskit.errors import InvalidMetricError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_KEY_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "Selector",
    "Series",
    "SeriesKey",
    "Tags",
    "check_value",
    "check_values",
    "validate_name",
    "validate_tags",
]

MAX_NAME_LENGTH = 255
"""The longest metric name, in characters."""
MAX_TAG_VALUE_LENGTH = 1024
"""The longest tag value, in characters."""
MAX_TAG_KEY_LENGTH = 128
"""The longest tag key, in characters."""
MAX_TAGS = 64
"""The most tags one series may carry (default tags included)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*(?:\.[A-Za-z0-9_:]+)*")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# C0 and C1 controls, DEL, the Unicode line/paragraph separators and lone surrogates: they
# break line-based formats (the exposition text, logs, CSV) or cannot be encoded as UTF-8.
_BAD_TAG_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid metric name, else raise ``InvalidMetricError``."""
    if not isinstance(name, str):
        raise InvalidMetricError(f"metric name must be a str, not {type(name).__name__}: {name!r}")
    if not name:
        raise InvalidMetricError("metric name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidMetricError(
            f"metric name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if _NAME.fullmatch(name) is None:
        raise InvalidMetricError(
            f"invalid metric name {name!r}: use dot-separated parts of letters, digits, '_' "
            "and ':', starting with a letter or '_' (e.g. 'system.cpu.usage_percent')"
        )
    return name


def _validate_tag(key: object, value: object, name: str | None) -> None:
    where = f" on metric {name!r}" if name else ""
    if not isinstance(key, str) or _TAG_KEY.fullmatch(key) is None:
        raise InvalidMetricError(
            f"invalid tag key {key!r}{where}: tag keys are identifiers "
            "(letters, digits and '_', not starting with a digit)"
        )
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise InvalidMetricError(
            f"tag key {key[:40]!r}...{where} is {len(key)} characters long; the limit is "
            f"{MAX_TAG_KEY_LENGTH}"
        )
    if key.startswith("__"):
        raise InvalidMetricError(
            f"tag key {key!r}{where} is reserved: keys may not start with '__'"
        )
    if not isinstance(value, str):
        raise InvalidMetricError(
            f"tag {key!r}{where} must have a str value, not {type(value).__name__} {value!r}"
            f" (pass str({value!r}) if that is what you mean)"
        )
    if not value.strip():
        what = "an empty value" if not value else "a value of only whitespace"
        raise InvalidMetricError(f"tag {key!r}{where} has {what}; omit the tag instead")
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise InvalidMetricError(
            f"tag {key!r}{where} value is {len(value)} characters; the limit is "
            f"{MAX_TAG_VALUE_LENGTH}"
        )
    bad = _BAD_TAG_CHAR.search(value)
    if bad is not None:
        char = bad.group()
        if char == "\x00":
            kind = "a NUL character"
        elif "\ud800" <= char <= "\udfff":
            kind = "a lone surrogate (not encodable as UTF-8)"
        else:
            kind = "a control character"
        raise InvalidMetricError(
            f"tag {key!r}{where} value contains {kind} {char!r} at position {bad.start()}"
        )


def _check_tag_count(count: int, name: str | None) -> None:
    if count > MAX_TAGS:
        where = f" on metric {name!r}" if name else ""
        raise InvalidMetricError(f"{count} tags{where}; a series may carry at most {MAX_TAGS}")


def validate_tags(tags: Mapping[str, str] | None, name: str | None = None) -> Tags:
    """Validate ``tags`` and return them as an immutable :class:`Tags`."""
    if tags is None:
        return EMPTY_TAGS
    if isinstance(tags, Tags):
        return tags
    if not isinstance(tags, Mapping):
        raise InvalidMetricError(f"tags must be a mapping of str to str, not {type(tags).__name__}")
    _check_tag_count(len(tags), name)
    for key, value in tags.items():
        _validate_tag(key, value, name)
    return Tags._trusted(tuple(sorted(tags.items())))


class Tags(Mapping[str, str]):
    """An immutable, hashable, ordered (by key) mapping of tag keys to values."""

    __slots__ = ("_hash", "_items")

    _items: tuple[tuple[str, str], ...]
    _hash: int

    def __init__(self, tags: Mapping[str, str] | None = None, **kwargs: str) -> None:
        merged = dict(tags or {}, **kwargs)
        _check_tag_count(len(merged), None)
        for key, value in merged.items():
            _validate_tag(key, value, None)
        self._items = tuple(sorted(merged.items()))
        self._hash = hash(self._items)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...]) -> Tags:
        """Build from already validated, key-sorted items (no checks)."""
        obj = cls.__new__(cls)
        obj._items = items
        obj._hash = hash(items)
        return obj

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tags):
            return self._items == other._items
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __lt__(self, other: Tags) -> bool:
        return self._items < other._items

    def __repr__(self) -> str:
        return repr(dict(self._items))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tags._trusted, (self._items,))

    @property
    def items_tuple(self) -> tuple[tuple[str, str], ...]:
        """The (key, value) pairs sorted by key."""
        return self._items

    def with_items(self, **extra: str) -> Tags:
        """Return a copy with ``extra`` tags added or replaced."""
        return Tags({**dict(self._items), **extra})


EMPTY_TAGS = Tags._trusted(())


class SeriesKey(NamedTuple):
    """The identity of a series: a metric name and its tags. Sorts by name, then tags."""

    name: str
    tags: Tags

    @classmethod
    def of(cls, name: str, tags: Mapping[str, str] | None = None) -> SeriesKey:
        """Validate ``name`` and ``tags`` and build a key."""
        validated = validate_name(name)
        return cls(validated, validate_tags(tags, validated))

    def __str__(self) -> str:
        if not self.tags:
            return self.name
        inner = ",".join(f'{k}="{v}"' for k, v in self.tags.items_tuple)
        return f"{self.name}{{{inner}}}"


_EMPTY_TS: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
_EMPTY_VALUES: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
_EMPTY_TS.flags.writeable = False
_EMPTY_VALUES.flags.writeable = False


@dataclass(frozen=True, eq=False)
class Series:
    """One series' samples: parallel int64-ns ``timestamps`` and float64 ``values``.

    Reads return series sorted by time with unique timestamps. A batch passed to a
    backend may be unsorted and may repeat a timestamp (the later one wins).
    """

    key: SeriesKey
    timestamps: npt.NDArray[np.int64] = field(default_factory=lambda: _EMPTY_TS)
    values: npt.NDArray[np.float64] = field(default_factory=lambda: _EMPTY_VALUES)

    def __post_init__(self) -> None:
        if self.timestamps.shape != self.values.shape or self.timestamps.ndim != 1:
            raise InvalidMetricError(
                f"series {self.key}: timestamps {self.timestamps.shape} and values "
                f"{self.values.shape} must be 1-d arrays of one length"
            )

    @classmethod
    def empty(cls, key: SeriesKey) -> Series:
        """A series with no samples."""
        return cls(key, _EMPTY_TS, _EMPTY_VALUES)

    @property
    def name(self) -> str:
        """The metric name."""
        return self.key.name

    @property
    def tags(self) -> Tags:
        """The series' tags."""
        return self.key.tags

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def __repr__(self) -> str:
        return f"Series({self.key}, {len(self)} samples)"

    def equals(self, other: Series) -> bool:
        """True if both have the same key, timestamps and values (NaN equal to NaN)."""
        return (
            self.key == other.key
            and np.array_equal(self.timestamps, other.timestamps)
            and np.array_equal(self.values, other.values, equal_nan=True)
        )


@dataclass(frozen=True)
class Selector:
    """Which series to act on: a metric name (``None`` = any) and required tag values.

    ``exact=True`` matches only the series whose tags are exactly ``tags``; otherwise a
    series matches when it carries every given tag with that value (it may have more).
    """

    name: str | None = None
    tags: Tags = EMPTY_TAGS
    exact: bool = False

    @classmethod
    def of(
        cls, name: str | None = None, tags: Mapping[str, str] | None = None, *, exact: bool = False
    ) -> Selector:
        """Validate and build a selector."""
        if name is not None:
            validate_name(name)
        return cls(name, validate_tags(tags, name), exact)

    @classmethod
    def for_key(cls, key: SeriesKey) -> Selector:
        """The selector matching exactly one series."""
        return cls(key.name, key.tags, exact=True)

    def matches(self, key: SeriesKey) -> bool:
        """True if ``key`` is selected."""
        if self.name is not None and key.name != self.name:
            return False
        if self.exact:
            return key.tags == self.tags
        key_tags = key.tags
        return all(key_tags.get(k) == v for k, v in self.tags.items_tuple)


def check_value(value: object, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float; NaN passes, +-inf only with ``allow_inf``."""
    if isinstance(value, (int, float, np.integer, np.floating)):  # bool is an int: 1.0/0.0
        try:
            v = float(value)
        except OverflowError:
            raise InvalidMetricError(
                f"value {value!r:.40} is too large for a float64 (about 1.8e308 at most)"
            ) from None
    else:
        raise InvalidMetricError(f"value must be a number, not {type(value).__name__} {value!r}")
    if math.isinf(v) and not allow_inf:
        raise InvalidMetricError(f"value {v} is infinite; pass allow_inf=True to store it")
    return v


def check_values(values: npt.ArrayLike, *, allow_inf: bool = False) -> npt.NDArray[np.float64]:
    """Return ``values`` as a fresh float64 array; NaN passes, +-inf only with ``allow_inf``."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        hint = " (an int too large for int64?)" if arr.dtype.kind == "O" else ""
        raise InvalidMetricError(f"values must be numbers, not dtype {arr.dtype}{hint}")
    if arr.ndim > 1:
        raise InvalidMetricError(
            f"values must be a 1-d array, not shape {arr.shape}; one call records one series"
        )
    out = np.array(arr, dtype=np.float64, copy=True).reshape(-1)
    if not allow_inf and np.isinf(out).any():
        raise InvalidMetricError("values contain +-inf; pass allow_inf=True to store them")
    return out
