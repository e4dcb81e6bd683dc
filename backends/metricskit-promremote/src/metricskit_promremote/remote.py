"""What every remote-write backend shares: URL options, the write path, reads by label set.

Writes are Prometheus remote write 1.0: a protobuf ``WriteRequest`` compressed with
snappy's block format, posted with ``Content-Encoding: snappy``,
``Content-Type: application/x-protobuf`` and ``X-Prometheus-Remote-Write-Version: 0.1.0``.
The flavours (:mod:`.prometheus`, :mod:`.victoriametrics`) differ only in how they read,
delete, flush and measure, so they implement :meth:`RemoteWriteBackend._fetch`,
``delete_before`` and ``stats``; the rest is here.

Precision: metricskit times are nanoseconds, remote write carries milliseconds. Each
timestamp is floored to its millisecond on write (two samples in one millisecond of one
batch: the later wins, as for any repeated timestamp) and read back as ``ms * 10**6``.
"""

from __future__ import annotations

import struct
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cramjam
import numpy as np
import numpy.typing as npt
from metricskit.errors import BackendError
from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage import merge_last_wins
from metricskit.storage.base import Capabilities, StorageBackend

from metricskit_promremote._proto import encode_write_request
from metricskit_promremote.http import HTTPClient
from metricskit_promremote.naming import (
    DEFAULT_NAME_LABEL,
    key_from_labels,
    label_matchers,
    labels_for,
    promql_selector,
    to_prom_name,
)

__all__ = [
    "NS_PER_MS",
    "RemoteOptions",
    "RemoteWriteBackend",
    "Samples",
    "ms_range",
    "names_regex",
    "parse_store_url",
    "seconds",
]

NS_PER_MS = 1_000_000
Samples = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""Millisecond timestamps and values of one series."""

WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "metricskit-promremote/0.1",
}

# URL query options and how to read them: ``victoriametrics://h:8428?timeout=5&retries=2``.
_URL_OPTIONS: dict[str, Any] = {
    "timeout": float,
    "retries": int,
    "backoff": float,
    "max_samples_per_request": int,
    "name_label": str,
    "write_path": str,
    "rewrite": lambda v: v.lower() in ("1", "true", "yes", "on"),
}


def parse_store_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """Split ``scheme[+https]://host:port/prefix?opt=v`` into (base URL, prefix, options)."""
    parts = urllib.parse.urlsplit(url)
    transport = parts.scheme.partition("+")[2] or "http"
    if transport not in ("http", "https"):
        raise BackendError(f"{url!r}: the transport after '+' must be http or https")
    if not parts.hostname:
        raise BackendError(f"{url!r} names no host; use e.g. {parts.scheme}://127.0.0.1:8428")
    options: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(parts.query):
        if name not in _URL_OPTIONS:
            raise BackendError(f"{url!r}: unknown option {name!r} (known: {sorted(_URL_OPTIONS)})")
        options[name] = _URL_OPTIONS[name](value)
    if parts.username:
        options["auth"] = (
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password or ""),
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{transport}://{netloc}", parts.path.rstrip("/"), options


def seconds(ms: int) -> str:
    """Milliseconds as the exact decimal seconds the HTTP APIs' ``time``/``start``/``end`` take."""
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    return f"{sign}{ms // 1000}.{ms % 1000:03d}"


def ms_range(start_ns: int, end_ns: int) -> tuple[int, int]:
    """``[start_ns, end_ns)`` as the half-open millisecond range holding the same samples."""
    return -(-start_ns // NS_PER_MS), -(-end_ns // NS_PER_MS)


@dataclass(frozen=True)
class RemoteOptions:
    """Options of a remote-write backend, from keywords or the URL's query string."""

    timeout: float = 30.0
    """Seconds to wait for the server on each attempt."""
    retries: int = 3
    """Attempts repeated after a network failure, 429 or 5xx."""
    backoff: float = 0.2
    """Seconds before the first retry; doubled at each further one."""
    max_samples_per_request: int = 100_000
    """Samples per remote-write request (a batch may take several)."""
    name_label: str = DEFAULT_NAME_LABEL
    """The label carrying the exact metricskit name."""
    write_path: str = "/api/v1/write"
    """Where remote write is posted (Mimir and Cortex: ``/api/v1/push``)."""
    rewrite: bool = False
    """VictoriaMetrics only: emulate overwrites and partial deletes by rewriting series."""
    auth: tuple[str, str] | None = None
    """HTTP basic auth, also taken from ``user:password@`` in the URL."""


def _float_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


class RemoteWriteBackend(StorageBackend):
    """Base of the remote-write backends: writes, label mapping, reads by selector."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, deletes=True, multiprocess=True
    )
    default_port: ClassVar[int]
    nan_bits: ClassVar[int] = 0x7FF8000000000001
    """The NaN written for a metricskit NaN (Prometheus' ordinary NaN; see subclasses)."""

    def __init__(self, url: str, **options: Any) -> None:
        base, prefix, url_options = parse_store_url(url)
        # Keywords beat the URL: code can override a URL that came from a config file.
        self.options = RemoteOptions(**{**url_options, **options})
        if self.options.max_samples_per_request < 1:
            raise ValueError("max_samples_per_request must be at least 1")
        self.url = url
        self.api_prefix = prefix
        self.name_label = self.options.name_label
        self.client = HTTPClient(
            base,
            timeout=self.options.timeout,
            retries=self.options.retries,
            backoff=self.options.backoff,
            auth=self.options.auth,
        )
        self._nan = _float_bits(self.nan_bits)
        self._closed = False

    # -- writing ----------------------------------------------------------------------

    def _prepare(self, batch: Sequence[Series]) -> dict[SeriesKey, Samples]:
        """Group a batch by key, floor to ms, sort and keep the last write of each ms."""
        chunks: dict[SeriesKey, list[Samples]] = {}
        for series in batch:
            if not len(series):
                continue
            chunks.setdefault(series.key, []).append(
                (
                    np.floor_divide(series.timestamps, NS_PER_MS),
                    np.asarray(series.values, dtype=np.float64),
                )
            )
        return {key: merge_last_wins(parts) for key, parts in chunks.items()}

    def check_times(self, key: SeriesKey, ts_ms: npt.NDArray[np.int64]) -> None:
        """Raise :class:`BackendError` for timestamps the server would drop; default: none."""

    def _encode(self, items: Sequence[tuple[SeriesKey, Samples]]) -> bytes:
        encoded = []
        for key, (ts_ms, values) in items:
            nan = np.isnan(values)
            if nan.any():
                values = values.copy()
                values[nan] = self._nan
            encoded.append((labels_for(key, self.name_label), ts_ms, values))
        return bytes(cramjam.snappy.compress_raw(encode_write_request(encoded)))

    def _requests(self, prepared: dict[SeriesKey, Samples]) -> Iterator[bytes]:
        """Encoded requests of at most ``max_samples_per_request`` samples each."""
        limit = self.options.max_samples_per_request
        pending: list[tuple[SeriesKey, Samples]] = []
        size = 0
        for key, (ts, vs) in prepared.items():
            start = 0
            while start < ts.size:
                take = min(limit - size, ts.size - start)
                pending.append((key, (ts[start : start + take], vs[start : start + take])))
                size += take
                start += take
                if size >= limit:
                    yield self._encode(pending)
                    pending, size = [], 0
        if pending:
            yield self._encode(pending)

    def send(self, prepared: dict[SeriesKey, Samples]) -> None:
        """Post already prepared samples (ms timestamps, one array pair per key)."""
        for key, (ts, _) in prepared.items():
            labels_for(key, self.name_label)  # reject a reserved tag before sending anything
            self.check_times(key, ts)
        for body in self._requests(prepared):
            self.client.request(
                "POST", self.options.write_path, "remote write", data=body, headers=WRITE_HEADERS
            )

    def write(self, batch: Sequence[Series]) -> None:
        """Send every sample of ``batch``; raises once the server has refused or retries ran out.

        A request that failed part way leaves earlier requests of the batch stored; the
        Recorder resends the whole batch, which rewrites the same samples.
        """
        self._check_open()
        prepared = self._prepare(batch)
        if prepared:
            self.send(prepared)

    # -- reading ----------------------------------------------------------------------

    def _fetch(self, match: str, start_ms: int, end_ms: int) -> dict[SeriesKey, Samples]:
        """Raw samples in ``[start_ms, end_ms)`` of the series ``match`` selects, by key."""
        raise NotImplementedError

    def series_range_params(self) -> dict[str, str]:
        """``start``/``end`` for ``/api/v1/series`` so that it looks at all time."""
        return {}

    def api(self, path: str) -> str:
        """The path of an HTTP API endpoint under the URL's prefix."""
        return self.api_prefix + path

    def get_json(self, path: str, what: str, params: Any) -> Any:
        """POST a form to a Prometheus-style JSON API and return its ``data``."""
        response = self.client.request("POST", self.api(path), what, data=params)
        try:
            payload = response.json()
        except ValueError as exc:
            raise BackendError(f"{what}: the server sent invalid JSON: {exc}") from exc
        if payload.get("status") != "success":
            raise BackendError(f"{what}: {payload.get('errorType')}: {payload.get('error')}")
        return payload.get("data")

    def label_sets(self, match: str) -> list[dict[str, str]]:
        """Label sets of the series ``match`` selects (``/api/v1/series``)."""
        params = {"match[]": match, **self.series_range_params()}
        data = self.get_json("/api/v1/series", "list series", params)
        return list(data or [])

    def select(self, selector: Selector) -> Iterator[SeriesKey]:
        """Keys matching ``selector``, filtered by the server, then exactly here."""
        self._check_open()
        match = promql_selector(selector.name, selector.tags.items_tuple)
        found = {key_from_labels(labels, self.name_label) for labels in self.label_sets(match)}
        return iter(sorted(k for k in found if k is not None and selector.matches(k)))

    def keys(self) -> Iterator[SeriesKey]:
        """Every series the server holds that metricskit can name."""
        return self.select(Selector())

    def query(self, selector: Selector, start_ns: int, end_ns: int) -> Iterator[Series]:
        """One server request for every selected series, instead of one per key."""
        self._check_open()
        start_ms, end_ms = ms_range(start_ns, end_ns)
        if start_ms >= end_ms:
            return iter(())
        match = promql_selector(selector.name, selector.tags.items_tuple)
        found = self._fetch(match, start_ms, end_ms)
        return iter(
            [
                _to_series(key, found[key])
                for key in sorted(found)
                if selector.matches(key) and found[key][0].size
            ]
        )

    def read(self, key: SeriesKey, start_ns: int, end_ns: int) -> Series:
        """The samples of exactly ``key`` in ``[start_ns, end_ns)``."""
        self._check_open()
        start_ms, end_ms = ms_range(start_ns, end_ns)
        if start_ms >= end_ms:
            return Series.empty(key)
        found = self._fetch(promql_selector(key.name, key.tags.items_tuple), start_ms, end_ms)
        return _to_series(key, found[key]) if key in found else Series.empty(key)

    def collect(
        self, found: dict[SeriesKey, Samples], labels: dict[str, str], ts: Any, values: Any
    ) -> None:
        """Add one server series (possibly one of several parts) to ``found``, merged by key."""
        key = key_from_labels(labels, self.name_label)
        if key is None:
            return
        ts_arr = np.asarray(ts, dtype=np.int64)
        vs_arr = np.asarray(values, dtype=np.float64)
        previous = found.get(key)
        if previous is not None:
            ts_arr = np.concatenate([previous[0], ts_arr])
            vs_arr = np.concatenate([previous[1], vs_arr])
        # The server may hold a timestamp twice (append-only engines); keep its last.
        found[key] = merge_last_wins([(ts_arr, vs_arr)])

    def exact_matchers(self, keys: Sequence[SeriesKey]) -> list[str]:
        """One selector per stored series of ``keys``, matching it and nothing with more labels.

        Built from the stored label sets, so a series written by another tool (no
        ``mk_name``) is matched as it is stored. PromQL has no "exactly these labels", so
        each selector also demands ``label=""`` for every label name that its same-named
        siblings carry and it does not.
        """
        wanted = set(keys)
        stored = self.label_sets("{__name__=~" + names_regex({k.name for k in keys}) + "}")
        names_by_metric: dict[str, set[str]] = {}
        for labels in stored:
            names_by_metric.setdefault(labels.get("__name__", ""), set()).update(labels)
        return [
            label_matchers(labels, names_by_metric[labels.get("__name__", "")] - set(labels))
            for labels in stored
            if key_from_labels(labels, self.name_label) in wanted
        ]

    # -- lifecycle --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{type(self).__name__} for {self.url} is closed")

    def close(self) -> None:
        """Flush, then drop the HTTP session; the backend is unusable afterwards."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self.client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _to_series(key: SeriesKey, samples: Samples) -> Series:
    ts_ms, values = samples
    return Series(key, ts_ms * NS_PER_MS, values)


def names_regex(names: set[str]) -> str:
    """A quoted RE2 alternation of the Prometheus names of ``names``."""
    # Prometheus names hold only [a-zA-Z0-9_:], none of which is special in RE2.
    return '"' + "|".join(sorted({to_prom_name(n) for n in names})) + '"'
