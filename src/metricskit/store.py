"""The user-facing store: one class over any backend.

``metricskit.open_store(url)`` returns a :class:`Store`. It takes the times people write
(seconds, datetimes, ISO strings), turns selections into :class:`~metricskit.model.Selector`
objects, returns numpy-backed :class:`~metricskit.model.Series` or pandas frames, and keeps
the per-series cap (``max_records_per_series``). Storage itself is the backend's job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from metricskit._time import TimeLike, parse_duration, to_ns
from metricskit.errors import InvalidArgumentError, QueryError
from metricskit.model import Selector, Series, SeriesKey, Tags, validate_name, validate_tags
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend, key_order
from metricskit.storage.registry import DEFAULT_URL, open_backend

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Store", "open_store", "series_frame"]


def open_store(
    url: str = DEFAULT_URL, *, max_records_per_series: int | None = None, **options: Any
) -> Store:
    """Open the store a URL names.

    ``memory://``, ``sqlite:///metrics.db`` (the default), ``parquet:///path/to/dir``,
    ``postgresql+psycopg://user@host/db``, ``mysql+pymysql://user@host/db`` or a plugin's
    scheme. ``max_records_per_series`` caps each series, dropping its oldest samples (the
    seed's ``max_records_per_metric``). Other keywords go to the backend.
    """
    return Store(open_backend(url, **options), max_records_per_series=max_records_per_series)


def _time_range(start: TimeLike | None, end: TimeLike | None) -> tuple[int, int]:
    start_ns = MIN_NS if start is None else to_ns(start)
    end_ns = MAX_NS if end is None else to_ns(end)
    if start_ns > end_ns:
        raise QueryError(f"start ({start!r}) is after end ({end!r})")
    return start_ns, end_ns


def series_frame(series: Iterable[Series]) -> pd.DataFrame:
    """Long-format DataFrame of ``series``: timestamp (UTC), name, value, a column per tag.

    ``name`` and tag columns are categoricals, so a frame of millions of samples from a
    few series stays small; a series without a tag has NaN in that tag's column.
    """
    import pandas as pd

    chunks = [s for s in series if len(s)]
    tag_keys = sorted({k for s in chunks for k in s.tags})
    if not chunks:
        empty: dict[str, Any] = {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "name": pd.Categorical([]),
            "value": pd.Series([], dtype="float64"),
        }
        empty.update({k: pd.Categorical([]) for k in tag_keys})
        return cast("pd.DataFrame", pd.DataFrame(empty))
    lengths = np.array([len(s) for s in chunks])
    owner = np.repeat(np.arange(len(chunks)), lengths)
    ts = np.concatenate([s.timestamps for s in chunks])
    columns: dict[str, Any] = {
        "timestamp": pd.DatetimeIndex(ts.view("datetime64[ns]"), tz="UTC"),
        "name": _categorical([s.name for s in chunks], owner),
        "value": np.concatenate([s.values for s in chunks]),
    }
    for key in tag_keys:
        columns[key] = _categorical([s.tags.get(key) for s in chunks], owner)
    return cast("pd.DataFrame", pd.DataFrame(columns))


def _categorical(per_series: list[str | None], owner: np.ndarray[Any, Any]) -> Any:
    import pandas as pd

    categories = sorted({v for v in per_series if v is not None})
    index = {v: i for i, v in enumerate(categories)}
    codes = np.array([index[v] if v is not None else -1 for v in per_series], dtype=np.int32)
    return pd.Categorical.from_codes(codes[owner], categories=pd.Index(categories))


class Store:
    """Query, write and maintain a metrics store through any :class:`StorageBackend`."""

    def __init__(
        self, backend: StorageBackend, *, max_records_per_series: int | None = None
    ) -> None:
        if max_records_per_series is not None and max_records_per_series < 1:
            raise InvalidArgumentError(
                f"max_records_per_series must be >= 1, got {max_records_per_series}"
            )
        self.backend = backend
        self.max_records_per_series = max_records_per_series
        self._known_keys: set[SeriesKey] = set()
        self._known_names: set[str] = set()
        # Lower bound of each capped series' length, so the cap costs a COUNT only when a
        # series may have outgrown it, not at every write.
        self._estimated_len: dict[SeriesKey, int] = {}
        self._cap_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({self.backend!r})"

    # -- writing ----------------------------------------------------------------------

    def write(self, batch: Sequence[Series]) -> None:
        """Write a batch of series (validated once per key), then apply the per-series cap."""
        for series in batch:
            key = series.key
            if key not in self._known_keys:
                # Tags validate when built, so only the name (cached: names repeat across
                # series) and foreign tag mappings need checking here.
                if key.name not in self._known_names:
                    validate_name(key.name)
                    self._known_names.add(key.name)
                if not isinstance(key.tags, Tags):
                    validate_tags(key.tags, key.name)
                self._known_keys.add(key)
        self.backend.write(batch)
        if self.max_records_per_series is not None:
            self._enforce_cap(batch, self.max_records_per_series)

    def _enforce_cap(self, batch: Sequence[Series], cap: int) -> None:
        with self._cap_lock:
            for series in batch:
                key = series.key
                estimate = self._estimated_len.get(key)
                estimate = (estimate + len(series)) if estimate is not None else None
                if estimate is not None and estimate <= cap:
                    self._estimated_len[key] = estimate
                    continue
                self._estimated_len[key] = self._trim(key, cap)

    def _trim(self, key: SeriesKey, cap: int) -> int:
        count = self.backend.count(key)
        if count <= cap:
            return count
        newest = self.backend.read(key, MIN_NS, MAX_NS).timestamps
        cutoff = int(newest[len(newest) - cap])
        self.backend.delete_before(cutoff, Selector.for_key(key))
        return cap

    def flush(self) -> None:
        """Return once everything written so far is durable."""
        self.backend.flush()

    def close(self) -> None:
        """Flush and close the backend."""
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------

    def query(
        self,
        name: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        """Series of ``name`` (any name if ``None``) carrying ``tags``, in ``[start, end)``.

        Each series is sorted by time; series with no sample in the range are left out.
        """
        start_ns, end_ns = _time_range(start, end)
        return list(self.backend.query(Selector.of(name, tags), start_ns, end_ns))

    def frame(
        self,
        name: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Like :meth:`query`, as a long DataFrame (see :func:`series_frame`)."""
        return series_frame(self.query(name, start, end, tags))

    def series(
        self, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[SeriesKey]:
        """The keys (name, tags) of stored series, sorted, optionally filtered."""
        return sorted(self.backend.select(Selector.of(name, tags)), key=key_order)

    def latest(
        self,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        at: TimeLike | None = None,
        lookback: str | float | None = None,
    ) -> list[tuple[SeriesKey, int, float]]:
        """The newest sample of each selected series, as ``(key, timestamp_ns, value)``.

        Only samples at or before ``at`` (default: the newest) and, with ``lookback``
        (e.g. ``"5m"``), no older than that are considered.
        """
        end_ns = MAX_NS if at is None else to_ns(at) + 1
        start_ns = MIN_NS if lookback is None else end_ns - parse_duration(lookback)
        found = []
        # Each backend answers last() without reading the history (see StorageBackend.last).
        for key in sorted(self.backend.select(Selector.of(name, tags)), key=key_order):
            sample = self.backend.last(key, start_ns, end_ns)
            if sample is not None:
                found.append((key, sample[0], sample[1]))
        return found

    # -- analysis (metricskit.query.analysis does the work) ---------------------------------

    def aggregate(
        self,
        name: str,
        step: str | float,
        stats: Sequence[str] = ("count", "mean", "p95", "p99"),
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Statistics of ``name`` in tumbling ``step`` windows (see ``analysis.aggregate_frame``).

        ``stats``: count, sum, mean, min, max, stddev, first, last, median, p95, p99.9, ...
        ``by`` (tag keys) pools the samples of the series sharing those tag values.
        """
        from metricskit.query.analysis import aggregate_frame

        start_ns, end_ns = _time_range(start, end)
        return aggregate_frame(
            self.query(name, start, end, tags),
            step,
            stats,
            None if start is None else start_ns,
            None if end is None else end_ns,
            by,
        )

    def rate(
        self,
        name: str,
        window: str | float = "5m",
        step: str | float = "1m",
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """PromQL ``rate(name[window])`` every ``step``; with ``by``, ``sum by (...)`` of it."""
        return self._range_function("rate", name, window, step, start, end, tags, by)

    def increase(
        self,
        name: str,
        window: str | float = "5m",
        step: str | float = "1m",
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """PromQL ``increase(name[window])`` every ``step``; with ``by``, summed per group."""
        return self._range_function("increase", name, window, step, start, end, tags, by)

    def _range_function(
        self,
        fn: str,
        name: str,
        window: str | float,
        step: str | float,
        start: TimeLike | None,
        end: TimeLike | None,
        tags: Mapping[str, str] | None,
        by: Sequence[str] | None,
    ) -> pd.DataFrame:
        from metricskit.query.analysis import rate_frame

        start_ns, end_ns, series = self._sliding_read(name, window, start, end, tags)
        return rate_frame(series, window, step, start_ns, end_ns, by, fn)

    def over_time(
        self,
        name: str,
        stat: str,
        window: str | float,
        step: str | float,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Mapping[str, str] | None = None,
        by: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """PromQL ``<stat>_over_time(name[window])`` every ``step`` (avg, max, p95, ...)."""
        from metricskit.query.analysis import over_time_frame

        start_ns, end_ns, series = self._sliding_read(name, window, start, end, tags)
        return over_time_frame(series, stat, window, step, start_ns, end_ns, by)

    def _sliding_read(
        self,
        name: str,
        window: str | float,
        start: TimeLike | None,
        end: TimeLike | None,
        tags: Mapping[str, str] | None,
    ) -> tuple[int | None, int | None, list[Series]]:
        """Evaluation bounds (inclusive, None = from the data) and the samples they need."""
        start_ns = None if start is None else to_ns(start)
        end_ns = None if end is None else to_ns(end)
        if start_ns is not None and end_ns is not None and start_ns > end_ns:
            raise QueryError(f"start ({start!r}) is after end ({end!r})")
        # the first window reaches back one window before start; the last ends at end
        read_from = MIN_NS if start_ns is None else start_ns - parse_duration(window)
        read_to = MAX_NS if end_ns is None else end_ns + 1
        series = list(self.backend.query(Selector.of(name, tags), read_from, read_to))
        return start_ns, end_ns, series

    # -- maintenance ------------------------------------------------------------------

    def delete(
        self,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        before: TimeLike | None = None,
    ) -> int:
        """Delete samples of the selected series older than ``before`` (all, if ``None``).

        With no name, tags or ``before`` this empties the store. Returns samples removed.
        """
        if name is not None:
            validate_name(name)
        selector = None if name is None and not tags else Selector.of(name, validate_tags(tags))
        cutoff = MAX_NS if before is None else to_ns(before)
        removed = self.backend.delete_before(cutoff, selector)
        with self._cap_lock:
            self._estimated_len.clear()
        return removed

    def stats(self) -> dict[str, int]:
        """``{"samples": ..., "series": ..., "bytes": ...}``."""
        return self.backend.stats().to_dict()

    # -- PromQL (metricskit.query does the work) --------------------------------------

    def promql(self, expr: str, time: TimeLike | None = None) -> pd.DataFrame:
        """PromQL instant query at ``time`` (default now); see :mod:`metricskit.query`."""
        from metricskit.query import instant_query

        return instant_query(self, expr, time)

    def promql_range(
        self, expr: str, start: TimeLike, end: TimeLike, step: str | float
    ) -> pd.DataFrame:
        """PromQL range query every ``step`` from ``start`` to ``end`` (inclusive)."""
        from metricskit.query import range_query

        return range_query(self, expr, start, end, step)
