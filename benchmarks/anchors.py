"""The anchors of the benchmarks: real Prometheus and VictoriaMetrics holding the dataset.

Each is the installed binary (Debian's ``prometheus``/``promtool`` and
``victoria-metrics``), started on a free port of 127.0.0.1 with its data in a temporary
directory and stopped by its pid (``metricskit_promremote.servers``), so a benchmark
measures metricskit and its anchor in the same run on the same machine, with the same
samples:

- VictoriaMetrics gets them through ``/api/v1/import`` (JSON lines), then a force flush;
- Prometheus gets them as TSDB blocks that ``promtool tsdb create-blocks-from
  openmetrics`` builds (the documented way to load history), opened at startup.

A missing binary raises ``ServerNotAvailable``; the benchmarks print the reason and
``tests/test_benchmarks.py`` turns it into a skip (a failure in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from metricskit_promremote.servers import (
    Server,
    ServerNotAvailable,
    start_prometheus,
    start_victoriametrics,
)

from dataset import Dataset

__all__ = [
    "ANCHOR_MISSING",
    "Server",
    "ServerNotAvailable",
    "blocks_in",
    "dir_bytes",
    "prometheus_holding",
    "promtool_blocks",
    "query_range",
    "timed_queries",
    "victoriametrics_holding",
    "vm_import",
    "vm_merge",
]

ANCHOR_MISSING = "anchor not available:"  # tests/test_benchmarks.py looks for this prefix
SAMPLES_PER_REQUEST = 100_000


def dir_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def vm_import(server: Server, data: Dataset) -> None:
    """The dataset as ``/api/v1/import`` JSON lines (about 100k samples a request), flushed."""
    ts_ms = (data.timestamps_ns // 1_000_000).tolist()
    per_request = max(1, SAMPLES_PER_REQUEST // len(ts_ms))
    with requests.Session() as session:
        for first in range(0, len(data.names), per_request):
            lines = []
            for i in range(first, min(first + per_request, len(data.names))):
                metric = {"__name__": data.names[i], **data.labels[i]}
                lines.append(
                    json.dumps(
                        {"metric": metric, "values": data.values[i].tolist(), "timestamps": ts_ms}
                    )
                )
            session.post(f"{server.http}/api/v1/import", data="\n".join(lines)).raise_for_status()
        session.get(f"{server.http}/internal/force_flush").raise_for_status()


def vm_merge(server: Server) -> None:
    """Force a merge of every partition and wait until the data directory stops changing."""
    requests.get(f"{server.http}/internal/force_merge", timeout=600).raise_for_status()
    # force_merge returns before the merged parts replace the old ones
    _settle(lambda: dir_bytes(server.data_dir / "data"), quiet_s=2.0, timeout_s=120.0)


def _settle(measure: Callable[[], int], *, quiet_s: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def _promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(path, os.X_OK):
        raise ServerNotAvailable("promtool is not installed (apt-get install prometheus)")
    return path


def promtool_blocks(data: Dataset, out: Path) -> Path:
    """TSDB blocks of the dataset in ``out``, built by promtool from OpenMetrics text."""
    promtool = _promtool()
    out.mkdir(parents=True, exist_ok=True)
    src = out.parent / f"{out.name}.om"
    ts_s = [f"{t // 1_000_000_000}" for t in data.timestamps_ns.tolist()]
    with src.open("w") as text:
        # OpenMetrics wants each family's samples together: the dataset's order is.
        for i, name in enumerate(data.names):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(data.labels[i].items()))
            prefix = f"{name}{{{labels}}} "
            text.writelines(
                f"{prefix}{v!r} {t}\n" for v, t in zip(data.values[i].tolist(), ts_s, strict=True)
            )
        text.write("# EOF\n")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(out)],
        check=True,
        capture_output=True,
    )
    src.unlink()
    return out


def blocks_in(tsdb: Path) -> int:
    """How many TSDB blocks a Prometheus data directory holds."""
    return sum(1 for _meta in tsdb.glob("*/meta.json"))


@contextlib.contextmanager
def prometheus_holding(
    data: Dataset, workdir: Path, *, compaction_wait_s: float = 0.0
) -> Iterator[Server]:
    """Prometheus serving the dataset from promtool's blocks.

    With ``compaction_wait_s``, wait (up to that long) until Prometheus' own compaction
    has merged the two-hour blocks promtool writes, i.e. the block count held still for
    90 s, so the bytes on disk are those of a long-running server.
    """
    promtool_blocks(data, workdir / "data")  # makes workdir too
    with start_prometheus(workdir) as server:
        if compaction_wait_s > 0:
            _settle(lambda: blocks_in(workdir / "data"), quiet_s=90.0, timeout_s=compaction_wait_s)
        yield server


@contextlib.contextmanager
def victoriametrics_holding(data: Dataset, workdir: Path) -> Iterator[Server]:
    """VictoriaMetrics (``-retentionPeriod=100y``) holding the dataset, imported and flushed."""
    workdir.mkdir(parents=True, exist_ok=True)
    with start_victoriametrics(workdir) as server:
        vm_import(server, data)
        yield server


def query_range(server: Server, promql: str, start_s: int, end_s: int, step_s: int) -> Any:
    """``/api/v1/query_range``'s ``data.result`` (uncached on VictoriaMetrics)."""
    params = {"query": promql, "start": start_s, "end": end_s, "step": step_s, "nocache": 1}
    reply = requests.get(f"{server.http}/api/v1/query_range", params=params, timeout=600)
    reply.raise_for_status()
    return reply.json()["data"]["result"]


def timed_queries(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and best wall ms of ``repeat`` calls after one warm-up call, and the result."""
    out = fn()  # warm-up: first-call imports, caches of file pages
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times), min(times), out
