"""``promremote://host:9090``: any receiver of remote write with the Prometheus query API.

Prometheus (``--web.enable-remote-write-receiver``), Mimir and Cortex (``write_path=
"/api/v1/push"``, URL path ``/prometheus`` for the query API), Thanos Receive behind a
Thanos Query, VictoriaMetrics too (though ``victoriametrics://`` reads it better).

- Reads are instant queries of a range selector, ``{...}[<span>ms]`` at the end of the
  range, which return raw samples. Prometheus durations stop at about 292 years, so a read
  spanning more is split into windows.
- NaN is written as Prometheus' ordinary NaN and comes back as NaN. Staleness markers
  (the NaN Prometheus writes when a scraped target disappears) are never returned by the
  query API, so they never appear in a read.
- Prometheus refuses samples older than its head block or out of order unless
  ``out_of_order_time_window`` is set, and a second value for a stored timestamp; those
  writes raise :class:`~metricskit.errors.BackendError` with the server's reason.
- ``delete_before`` uses ``/api/v1/admin/tsdb/delete_series`` with an ``end``, which
  deletes any time range; it needs Prometheus started with ``--web.enable-admin-api``.
- ``flush()`` does nothing: a sample is queryable once its write request returned.
"""

from __future__ import annotations

from typing import Any, ClassVar

from metricskit.errors import BackendError
from metricskit.model import Selector, SeriesKey
from metricskit.storage.base import StorageStats

from metricskit_promremote.http import RequestRejected
from metricskit_promremote.naming import promql_selector, to_prom_name
from metricskit_promremote.remote import NS_PER_MS, RemoteWriteBackend, Samples, seconds

__all__ = ["PromRemoteBackend"]

# int64 nanoseconds span 1677-2262; nothing metricskit writes lies outside.
_MIN_MS = -(2**63) // NS_PER_MS + 1
_MAX_MS = (2**63 - 1) // NS_PER_MS
_WINDOW_MS = 100 * 365 * 86_400_000  # well inside Prometheus' 292-year duration limit


def _windows(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    start_ms, end_ms = max(start_ms, _MIN_MS), min(end_ms, _MAX_MS)
    out = []
    while start_ms < end_ms:
        stop = min(end_ms, start_ms + _WINDOW_MS)
        out.append((start_ms, stop))
        start_ms = stop
    return out


class PromRemoteBackend(RemoteWriteBackend):
    """A Prometheus-compatible server: remote write in, PromQL range selectors out."""

    scheme: ClassVar[str] = "promremote"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        if self.options.rewrite:
            raise ValueError(
                "rewrite=True is for victoriametrics://; Prometheus deletes time ranges "
                "itself and refuses overwrites"
            )

    def _range_query(self, match: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Raw samples in ``[start_ms, end_ms)`` of one window, as the API's matrix."""
        # Prometheus 2 range selectors hold [t - span, t]: end one ms early for half-open.
        span = end_ms - 1 - start_ms
        if span <= 0:  # a one-ms window: "[0ms]" is not valid PromQL
            query = f"{match}[1ms]"
            params = {"query": query, "time": seconds(end_ms - 1)}
            rows = self.get_json("/api/v1/query", "read samples", params)["result"]
            for row in rows:
                row["values"] = [v for v in row["values"] if round(v[0] * 1000) >= start_ms]
            return list(rows)
        params = {"query": f"{match}[{span}ms]", "time": seconds(end_ms - 1)}
        return list(self.get_json("/api/v1/query", "read samples", params)["result"])

    def _fetch(self, match: str, start_ms: int, end_ms: int) -> dict[SeriesKey, Samples]:
        found: dict[SeriesKey, Samples] = {}
        for lo, hi in _windows(start_ms, end_ms):
            for row in self._range_query(match, lo, hi):
                pairs = row.get("values") or []
                ts = [round(float(t) * 1000) for t, _ in pairs]
                values = [float(v) for _, v in pairs]  # "NaN", "+Inf" parse as floats
                self.collect(found, row["metric"], ts, values)
        return found

    def label_sets(self, match: str) -> list[dict[str, str]]:
        """Label sets of series holding samples, even right after a delete.

        ``/api/v1/series`` keeps listing a series whose samples were all deleted until the
        head block is compacted, so metricskit's series (those with ``mk_name``) are listed
        by ``count_over_time`` instead, which sees tombstones. Series from other tools are
        listed by ``/api/v1/series`` (``count_over_time`` drops ``__name__``, which they
        need).
        """
        own = match[:-1] + f', {self.name_label}!=""}}'
        found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for lo, hi in _windows(_MIN_MS, _MAX_MS):
            params = {"query": f"count_over_time({own}[{hi - 1 - lo}ms])", "time": seconds(hi - 1)}
            for row in self.get_json("/api/v1/query", "list series", params)["result"]:
                labels = dict(row["metric"])
                labels["__name__"] = to_prom_name(labels[self.name_label])
                found[tuple(sorted(labels.items()))] = labels
        foreign = super().label_sets(match[:-1] + f', {self.name_label}=""}}')
        return [*found.values(), *foreign]

    def delete_before(self, cutoff_ns: int, selector: Selector | None = None) -> int:
        """Delete the selected samples older than ``cutoff_ns`` (admin API, any range)."""
        self._check_open()
        selector = selector or Selector()
        cutoff_ms = -(-cutoff_ns // NS_PER_MS)
        match = promql_selector(selector.name, selector.tags.items_tuple)
        doomed = {
            key: samples
            for key, samples in self._fetch(match, _MIN_MS, cutoff_ms).items()
            if selector.matches(key) and samples[0].size
        }
        if not doomed:
            return 0
        params: list[tuple[str, str]] = [("match[]", m) for m in self.exact_matchers(list(doomed))]
        params.append(("start", seconds(_MIN_MS // 1000 * 1000)))
        params.append(("end", seconds(cutoff_ms - 1)))
        try:
            self.client.request(
                "POST", self.api("/api/v1/admin/tsdb/delete_series"), "delete series", data=params
            )
        except RequestRejected as exc:
            raise BackendError(
                f"{exc}. Deleting needs the server's admin API: start Prometheus with "
                "--web.enable-admin-api (Mimir, Cortex and Thanos delete through their own "
                "tools, not this API)"
            ) from exc
        return sum(int(ts.size) for ts, _ in doomed.values())

    def stats(self) -> StorageStats:
        """Samples (``count_over_time``), series, and the TSDB's bytes from ``/metrics``.

        Bytes are the persisted blocks plus the head's memory-mapped chunks; Prometheus
        does not report its write-ahead log over HTTP, so a young server reports 0.
        """
        self._check_open()
        samples = 0
        for lo, hi in _windows(_MIN_MS, _MAX_MS):
            query = f'sum(count_over_time({{__name__=~".+"}}[{hi - 1 - lo}ms]))'
            data = self.get_json(
                "/api/v1/query", "stats query", {"query": query, "time": seconds(hi - 1)}
            )
            for row in data.get("result") or []:
                samples += int(float(row["value"][1]))
        series = sum(1 for _ in self.keys())
        size = 0.0
        try:
            text = self.client.request("GET", self.api("/metrics"), "server metrics").text
        except RequestRejected:
            text = ""  # Mimir and friends keep /metrics elsewhere; bytes stay unknown (0)
        wanted = (
            "prometheus_tsdb_storage_blocks_bytes ",
            "prometheus_tsdb_head_chunks_storage_size_bytes ",
            "prometheus_tsdb_wal_storage_size_bytes ",
        )
        for line in text.splitlines():
            if line.startswith(wanted):
                size += float(line.rsplit(" ", 1)[1])
        return StorageStats(samples=samples, series=series, bytes=int(size))
