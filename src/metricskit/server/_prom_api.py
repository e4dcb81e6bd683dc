"""Prometheus' HTTP API (``/api/v1/...``) over a store, as Starlette routes.

Grafana's Prometheus data source and ``prometheus-api-client`` speak it: ``query``,
``query_range``, ``series``, ``labels``, ``label/<name>/values``, ``metadata``, ``rules``
and ``alerts`` (those two in :mod:`~metricskit.server._prom_rules`), by GET or by POST
(form-encoded), answering Prometheus' JSON envelope (``{"status": "success", "data":
...}``; errors ``{"status": "error", "errorType", "error"}`` with 400 for ``bad_data``,
422 for ``execution``). Values are spelled as Prometheus spells them (``"2"``,
``"0.00001"``, ``"1e-07"``, ``"NaN"``, ``"+Inf"``) and timestamps are seconds with
millisecond precision, so the bytes match Prometheus' for the same result.
"""

from __future__ import annotations

import json
import math
import re
import time as _time_mod
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from metricskit._time import parse_duration, to_ns
from metricskit.catalog import describe, histogram_of
from metricskit.errors import MetricsKitError, QueryError
from metricskit.model import Selector
from metricskit.naming import exposed_name
from metricskit.query import MAX_STEPS, backend_of, evaluate_at, parse
from metricskit.query._plan import MatrixSelector, String, Subquery, VectorSelector
from metricskit.query._select import candidate, selector_matches
from metricskit.query._values import (
    F64,
    I64,
    Labels,
    RangeVector,
    Scalar,
    StringValue,
    Value,
    merge,
)
from metricskit.query.range_functions import eval_times
from metricskit.server._prom_rules import AlertSource, alerts_json, rules_json

__all__ = ["AlertSource", "prom_api_routes"]

_MS = 1_000_000
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MIN_TIME = -(2**62)
_MAX_TIME = 2**62


class ApiError(MetricsKitError, ValueError):
    """A request Prometheus' API refuses: ``kind`` is its errorType."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "internal": 500}


def _json(payload: dict[str, Any] | str, status: int = 200) -> Response:
    body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return Response(body, status, media_type="application/json")


def _error(err: ApiError) -> Response:
    payload = {"status": "error", "errorType": err.kind, "error": str(err)}
    return _json(payload, _STATUS.get(err.kind, 400))


# -- parameters ---------------------------------------------------------------------


def _time_param(params: dict[str, list[str]], name: str, default: int) -> int:
    """Unix seconds (float) or RFC 3339, as Prometheus' parseTime; in ns, on whole ms."""
    values = params.get(name)
    if not values or values[0] == "":
        return default
    text = values[0]
    try:
        seconds = float(text)
        if not math.isfinite(seconds):
            raise ValueError(text)
        ns = round(seconds * 1000) * _MS
    except ValueError:
        try:
            ns = to_ns(text)
        except (MetricsKitError, ValueError):
            raise ApiError(
                "bad_data",
                f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp',
            ) from None
        ns = ns // _MS * _MS
    return ns


def _step_param(params: dict[str, list[str]]) -> int:
    text = (params.get("step") or [""])[0]
    if text == "":
        raise ApiError("bad_data", 'invalid parameter "step": cannot parse "" to a valid duration')
    try:
        ns = round(float(text) * 1000) * _MS
    except ValueError:
        try:
            ns = parse_duration(text)
        except (MetricsKitError, ValueError):
            raise ApiError(
                "bad_data", f'invalid parameter "step": cannot parse "{text}" to a valid duration'
            ) from None
    if ns <= 0:
        raise ApiError(
            "bad_data",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    return ns


def _query_param(params: dict[str, list[str]]) -> str:
    text = (params.get("query") or [""])[0]
    if text.strip() == "":
        raise ApiError("bad_data", 'invalid parameter "query": empty query')
    return text


async def _params(request: Request) -> dict[str, list[str]]:
    """The query string, plus a form-encoded POST body (no multipart parser needed)."""
    out: dict[str, list[str]] = {}
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        pairs += parse_qsl(body, keep_blank_values=True)
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


# -- formatting ---------------------------------------------------------------------


def _value(v: float) -> str:
    """A float as Prometheus' JSON spells it: Go's shortest ``'f'`` format, ``'e'`` below
    1e-6 and from 1e21 on (where Python's repr is exponential too, with the same digits)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)  # the shortest digits that read back, as Go's -1 precision
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    if v != 0 and not 1e-6 <= abs(v) < 1e21:
        return text
    return np.format_float_positional(v, unique=True, trim="-")


def _stamp(ns: int) -> str:
    """Milliseconds as Prometheus writes a timestamp: seconds, then ``.mmm`` if not whole."""
    ms = ns // _MS
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    whole, frac = divmod(ms, 1000)
    return f"{sign}{whole}.{frac:03d}" if frac else f"{sign}{whole}"


def _point(ns: int, v: float) -> str:
    return f'[{_stamp(ns)},"{_value(v)}"]'


def _stamps(ns: I64) -> list[str]:
    return [_stamp(t) for t in ns.tolist()]


def _points(stamps: list[str], vs: F64) -> str:
    # a range query's times are shared by its series: their spellings are made once
    return ",".join(f'[{t},"{_value(v)}"]' for t, v in zip(stamps, vs.tolist(), strict=True))


def _metric(labels: Labels) -> str:
    return json.dumps(dict(labels), separators=(",", ":"))


def _envelope(kind: str, result: str) -> str:
    return f'{{"status":"success","data":{{"resultType":"{kind}","result":{result}}}}}'


def _matrix(rows: Iterable[tuple[Labels, str]]) -> str:
    # Prometheus sorts a matrix by its label sets
    ordered = sorted(rows, key=lambda r: r[0])
    return "[" + ",".join(f'{{"metric":{_metric(m)},"values":[{p}]}}' for m, p in ordered) + "]"


def _render(value: Value, times: I64, instant: bool) -> str:
    if isinstance(value, StringValue):
        return _envelope("string", f"[{_stamp(int(times[0]))},{json.dumps(value.value)}]")
    if isinstance(value, Scalar):
        if instant:
            return _envelope("scalar", _point(int(times[0]), float(value.values[0])))
        return _envelope("matrix", _matrix([((), _points(_stamps(times), value.values))]))
    if isinstance(value, RangeVector):
        end = int(value.times[0])
        rows = []
        for labels, (ts, vs) in zip(value.labels, value.samples, strict=True):
            keep = (ts > end - value.range_ns) & (ts <= end)
            if keep.any():
                rows.append((labels, _points(_stamps(ts[keep]), vs[keep])))
        return _envelope("matrix", _matrix(rows))
    vector = merge(value)
    if instant:
        items = [
            f'{{"metric":{_metric(m)},"value":{_point(int(times[0]), float(v[0]))}}}'
            for m, v, p in zip(vector.labels, vector.values, vector.present, strict=True)
            if p[0]
        ]
        return _envelope("vector", "[" + ",".join(items) + "]")
    stamps = _stamps(times)
    rows = []
    for labels, vals, pres in zip(vector.labels, vector.values, vector.present, strict=True):
        if pres.any():
            mine = [stamps[j] for j in np.flatnonzero(pres).tolist()]
            rows.append((labels, _points(mine, vals[pres])))
    return _envelope("matrix", _matrix(rows))


# -- endpoints ----------------------------------------------------------------------


def _plan(expr: str) -> Any:
    try:
        return parse(expr)
    except QueryError as exc:
        raise ApiError("bad_data", str(exc)) from None


def _run(store: Any, node: Any, times: I64, start: int, end: int) -> Value:
    try:
        return evaluate_at(backend_of(store), node, times, start, end)
    except QueryError as exc:
        raise ApiError("execution", str(exc)) from None


def _instant(store: Any, params: dict[str, list[str]]) -> str:
    node = _plan(_query_param(params))
    at = _time_param(params, "time", _time_mod.time_ns() // _MS * _MS)
    times = np.array([at], dtype=np.int64)
    return _render(_run(store, node, times, at, at), times, instant=True)


def _range(store: Any, params: dict[str, list[str]]) -> str:
    for name in ("start", "end"):
        if not params.get(name):
            raise ApiError("bad_data", f'invalid parameter "{name}": missing')
    start, end = _time_param(params, "start", 0), _time_param(params, "end", 0)
    if end < start:
        raise ApiError("bad_data", "end timestamp must not be before start time")
    step = _step_param(params)
    if (end - start) // step > MAX_STEPS:
        raise ApiError(
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)",
        )
    node = _plan(_query_param(params))
    if isinstance(node, String | MatrixSelector | Subquery):  # refused before reading data
        kind = "string" if isinstance(node, String) else "range vector"
        raise ApiError(
            "bad_data",
            f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector',
        )
    times = eval_times(start, end, step)
    value = _run(store, node, times, start, end)
    return _render(value, times, instant=False)


def _selected(store: Any, params: dict[str, list[str]], required: bool) -> list[Labels]:
    """Label sets of the series ``match[]`` selects with samples in [start, end]."""
    texts = params.get("match[]", [])
    if required and not texts:
        raise ApiError("bad_data", "no match[] parameter provided")
    selectors = []
    for text in texts:
        node = _plan(text)
        if not isinstance(node, VectorSelector):
            raise ApiError("bad_data", f'invalid parameter "match[]": {text!r} is not a selector')
        selectors.append(node)
    start = _time_param(params, "start", _MIN_TIME)
    end = _time_param(params, "end", _MAX_TIME)
    backend = backend_of(store)
    out = []
    for key in backend.select(Selector()):
        c = candidate(key)
        if selectors and not any(selector_matches(s, c) for s in selectors):
            continue
        if (start, end) != (_MIN_TIME, _MAX_TIME) and backend.count(key, start, end + 1) == 0:
            continue
        out.append(c.labels)
    return sorted(set(out))


def _series(store: Any, params: dict[str, list[str]]) -> str:
    data = [dict(labels) for labels in _selected(store, params, required=True)]
    return _ok(data)


def _labels(store: Any, params: dict[str, list[str]]) -> str:
    names = sorted({k for labels in _selected(store, params, False) for k, _ in labels})
    return _ok(names)


def _label_values(store: Any, params: dict[str, list[str]], name: str) -> str:
    if not _LABEL_NAME.fullmatch(name):
        raise ApiError("bad_data", f'invalid label name: "{name}"')
    values = sorted(
        {v for labels in _selected(store, params, False) for k, v in labels if k == name}
    )
    return _ok(values)


def _ok(data: object) -> str:
    return json.dumps({"status": "success", "data": data}, separators=(",", ":"))


def _metadata(store: Any, params: dict[str, list[str]]) -> str:
    """Each exposed family's type, help and unit, as ``/metrics`` declares them."""
    wanted = (params.get("metric") or [""])[0]
    limit = int((params.get("limit") or ["-1"])[0] or -1)
    out: dict[str, list[dict[str, str]]] = {}
    for name in sorted({key.name for key in backend_of(store).select(Selector())}):
        base = histogram_of(name) or name
        exposed, info = exposed_name(base), describe(base)
        if wanted and exposed.family != wanted:
            continue
        entry = {"type": exposed.kind.value, "help": info.description, "unit": ""}
        out.setdefault(exposed.family, [entry])
    if limit >= 0:
        out = dict(list(out.items())[:limit])
    return _ok(out)


def _rule_type(params: dict[str, list[str]]) -> dict[str, list[str]]:
    kind = (params.get("type") or [""])[0]
    if kind.lower() not in ("", "alert", "record"):
        raise ApiError("bad_data", f'invalid parameter "type": not supported value "{kind}"')
    return params


Handler = Callable[[Any, dict[str, list[str]]], str]


def _endpoint(store: Any, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        params = await _params(request)
        if "name" in request.path_params:
            params["__label__"] = [request.path_params["name"]]
        try:
            return _json(await run_in_threadpool(handler, store, params))
        except ApiError as err:
            return _error(err)

    return endpoint


def prom_api_routes(store: Any, alerts: AlertSource | None = None) -> list[BaseRoute]:
    """The ``/api/v1`` routes over ``store`` (a Store or a StorageBackend); ``alerts``
    (the service's rule engine) feeds ``/api/v1/rules`` and ``/api/v1/alerts``."""
    table: dict[str, Handler] = {
        "/api/v1/query": _instant,
        "/api/v1/query_range": _range,
        "/api/v1/series": _series,
        "/api/v1/labels": _labels,
        "/api/v1/label/{name}/values": lambda s, p: _label_values(s, p, p["__label__"][0]),
        "/api/v1/metadata": _metadata,
        "/api/v1/rules": lambda s, p: rules_json(alerts, _rule_type(p)),
        "/api/v1/alerts": lambda s, p: alerts_json(alerts, p),
    }
    return [
        Route(path, _endpoint(store, handler), methods=["GET", "POST"])
        for path, handler in table.items()
    ]
