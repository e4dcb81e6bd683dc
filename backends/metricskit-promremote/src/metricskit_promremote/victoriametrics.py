"""``victoriametrics://host:8428``: VictoriaMetrics single-node over remote write.

- Reads use ``/api/v1/export`` (raw samples as JSON lines, no lookback, no rollups).
- ``flush()`` calls ``/internal/force_flush`` so that what was written is searchable at
  once (VictoriaMetrics otherwise shows new samples after about a second); a server without
  it (vminsert, a managed service) is remembered and flush is then a no-op.
- VictoriaMetrics drops ordinary NaN on ingestion and keeps only Prometheus' staleness
  marker (NaN with payload 2), so a metricskit NaN is written as that marker and any NaN
  read back is a metricskit NaN. In PromQL over VictoriaMetrics those samples read as
  "no value here", which is what a NaN sample means for a metric.
- Values keep about 12 significant decimal digits, relative to the largest magnitude in
  the same storage block (VictoriaMetrics stores scaled integers); -0.0 reads as 0.0.
- Timestamps must lie between the server's retention start (never before 1970) and two
  days from now; others would be dropped silently by the server, so they raise here.
- Deletes: ``/api/v1/admin/tsdb/delete_series`` drops whole series. ``delete_before`` whose
  cutoff leaves samples of a series raises :class:`~metricskit.errors.BackendError` unless
  the backend was opened with ``rewrite=True``: then that series is exported, deleted and
  its remaining samples written again. The same option makes a write that repeats an
  existing timestamp overwrite it (VictoriaMetrics would keep both). Rewrites are not
  atomic: use them with one writer per series, never while another process writes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from metricskit.errors import BackendError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage.base import Capabilities, StorageStats

from metricskit_promremote.http import RequestRejected
from metricskit_promremote.naming import promql_selector
from metricskit_promremote.remote import (
    NS_PER_MS,
    RemoteWriteBackend,
    Samples,
    names_regex,
    seconds,
)

__all__ = ["VictoriaMetricsBackend"]

_FUTURE_LIMIT_MS = 2 * 86_400_000  # VictoriaMetrics rejects samples further ahead than 2 days
_SAFETY_MS = 60_000  # leave a minute for clock skew between us and the server


def _now_ms() -> int:
    return time.time_ns() // NS_PER_MS


def _json_infinities(line: bytes) -> bytes:
    """An export line as JSON Python reads: VictoriaMetrics writes bare ``+Inf``/``-Inf``.

    Only the value list is rewritten (after the last ``"values":[``), so a label value
    such as ``le="+Inf"`` stays as it is; NaN is written as ``null``, which reads as NaN.
    """
    at = line.rfind(b'"values":[')
    if at < 0:
        return line
    values = line[at:].replace(b"+Inf", b"Infinity").replace(b"-Inf", b"-Infinity")
    return line[:at] + values


class VictoriaMetricsBackend(RemoteWriteBackend):
    """VictoriaMetrics: remote write in, ``/api/v1/export`` out, whole-series deletes."""

    scheme: ClassVar[str] = "victoriametrics"
    nan_bits: ClassVar[int] = 0x7FF0000000000002  # Prometheus' staleness marker
    # VictoriaMetrics keeps a value as a decimal mantissa and exponent: -0.0 reads back
    # as 0 and subnormals as 0, so values are equal as numbers, not bit for bit.
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, deletes=True, multiprocess=True, bit_exact=False
    )

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._force_flush = True

    # -- writes -----------------------------------------------------------------------

    def check_times(self, key: SeriesKey, ts_ms: npt.NDArray[np.int64]) -> None:
        """Refuse timestamps VictoriaMetrics would drop without saying so."""
        if ts_ms[0] < 0:
            raise BackendError(
                f"{key}: VictoriaMetrics cannot store times before 1970-01-01 "
                f"(got {int(ts_ms[0])} ms); samples older than its -retentionPeriod are dropped too"
            )
        limit = _now_ms() + _FUTURE_LIMIT_MS - _SAFETY_MS
        if ts_ms[-1] > limit:
            raise BackendError(
                f"{key}: VictoriaMetrics drops samples more than 2 days ahead of now "
                f"(got {int(ts_ms[-1])} ms, limit about {limit} ms)"
            )

    def write(self, batch: Sequence[Series]) -> None:
        """Send ``batch``; with ``rewrite=True``, repeated timestamps overwrite stored ones."""
        self._check_open()
        prepared = self._prepare(batch)
        if not prepared:
            return
        if self.options.rewrite:
            prepared = self._merge_stored(prepared)
        self.send(prepared)

    def _merge_stored(self, prepared: dict[SeriesKey, Samples]) -> dict[SeriesKey, Samples]:
        """Fold stored samples into series whose timestamps repeat; delete those series."""
        self.flush()
        lo = min(int(ts[0]) for ts, _ in prepared.values())
        hi = max(int(ts[-1]) for ts, _ in prepared.values())
        names = {key.name for key in prepared}
        match = "{__name__=~" + names_regex(names) + "}"
        stored = self._fetch(match, lo, hi + 1)
        clashing = [
            key
            for key, (ts, _) in prepared.items()
            if key in stored and np.intersect1d(stored[key][0], ts).size
        ]
        if not clashing:
            return prepared
        whole = self._fetch(match, 0, _now_ms() + _FUTURE_LIMIT_MS)
        merged = dict(prepared)
        for key in clashing:
            merged[key] = merge_last_wins([whole[key], prepared[key]])
        self._delete_series(clashing)
        return merged

    def flush(self) -> None:
        """Make written samples searchable now (``/internal/force_flush``) where offered."""
        self._check_open()
        if not self._force_flush:
            return
        try:
            self.client.request("GET", "/internal/force_flush", "force flush")
        except RequestRejected as exc:
            if exc.status not in (400, 404, 405):
                raise
            self._force_flush = False

    # -- reads ------------------------------------------------------------------------

    def series_range_params(self) -> dict[str, str]:
        """``/api/v1/series`` defaults to the last day on VictoriaMetrics; ask for all time."""
        # start=0 reads as "not given" there (the last day again), so start at 1 ms.
        return {"start": seconds(1), "end": seconds(_now_ms() + _FUTURE_LIMIT_MS)}

    def _fetch(self, match: str, start_ms: int, end_ms: int) -> dict[SeriesKey, Samples]:
        start_ms = max(start_ms, 0)
        end_ms = min(end_ms, _now_ms() + _FUTURE_LIMIT_MS)
        found: dict[SeriesKey, Samples] = {}
        if start_ms >= end_ms:
            return found
        params = {"match[]": match, "start": seconds(start_ms), "end": seconds(end_ms - 1)}
        response = self.client.request(
            "POST", self.api("/api/v1/export"), "export samples", data=params, stream=True
        )
        try:
            for line in response.iter_lines():
                if not line:
                    continue
                try:
                    row = json.loads(_json_infinities(line))
                    labels, ts, values = row["metric"], row["timestamps"], row["values"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise BackendError(f"export samples: unreadable line {line[:200]!r}") from exc
                ts_arr = np.asarray(ts, dtype=np.int64)
                keep = (ts_arr >= start_ms) & (ts_arr < end_ms)
                self.collect(found, labels, ts_arr[keep], np.asarray(values, dtype=float)[keep])
        finally:
            response.close()
        return found

    # -- deletes and stats --------------------------------------------------------------

    def _delete_series(self, keys: list[SeriesKey]) -> None:
        params = [("match[]", m) for m in self.exact_matchers(keys)]
        self.client.request(
            "POST", self.api("/api/v1/admin/tsdb/delete_series"), "delete series", data=params
        )

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Delete the selected samples older than ``cutoff_ns``; see the module docstring.

        Nothing is deleted when some series would keep samples and ``rewrite`` is off.
        """
        self._check_open()
        self.flush()
        selector = selector or Selector()
        cutoff_ms = -(-cutoff_ns // NS_PER_MS)
        match = promql_selector(selector.name, selector.tags.items_tuple)
        stored = self._fetch(match, 0, _now_ms() + _FUTURE_LIMIT_MS)
        whole: list[SeriesKey] = []
        partial: dict[SeriesKey, Samples] = {}
        removed = 0
        for key, (ts, vs) in sorted(stored.items()):
            if not selector.matches(key):
                continue
            cut = int(np.searchsorted(ts, cutoff_ms, side="left"))
            removed += cut
            if cut == ts.size:
                whole.append(key)
            elif cut:
                partial[key] = (ts[cut:], vs[cut:])
        if partial and not self.options.rewrite:
            example = next(iter(partial))
            raise BackendError(
                f"VictoriaMetrics deletes whole series only, and {len(partial)} selected "
                f"series (e.g. {example}) hold samples on both sides of the cutoff; nothing "
                "was deleted. Let the server's -retentionPeriod expire old samples, delete "
                "whole series (before=None), or open the store with rewrite=True to rewrite "
                "those series (not atomic: one writer per series)"
            )
        if whole or partial:
            self._delete_series([*whole, *partial])
        if partial:
            self.send(partial)
            self.flush()
        return removed

    def stats(self) -> StorageStats:
        """Samples and series (counted from a full export: exact, but reads everything), bytes.

        ``count_over_time`` would be cheaper but VictoriaMetrics answers it with nothing
        for ranges of decades, and it skips the staleness markers that hold NaNs.
        """
        self._check_open()
        self.flush()
        found = self._fetch('{__name__=~".+"}', 0, _now_ms() + _FUTURE_LIMIT_MS)
        samples = sum(int(ts.size) for ts, _ in found.values())
        series = sum(1 for ts, _ in found.values() if ts.size)
        text = self.client.request("GET", "/metrics", "server metrics").text
        size = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vm_data_size_bytes{")
        )
        return StorageStats(samples=samples, series=series, bytes=int(size))
