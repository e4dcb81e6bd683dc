"""A real Prometheus over backfilled samples, for the interop tests.

The samples are written as OpenMetrics text, turned into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics`` and served by Debian's ``prometheus``
on a free port of 127.0.0.1 (stopped by pid afterwards).
"""

from __future__ import annotations

import math
import os
import random
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests

from metricskit import Series, SeriesKey, Store, open_store
from tests.services import binary, free_port, running

# (metric name, labels, [(timestamp ms, value)])
OMSeries = tuple[str, dict[str, str], list[tuple[int, float]]]


def store_of(series: Iterable[OMSeries], url: str = "memory://") -> Store:
    """A store (``url``) holding ``series`` (times in ms, as OpenMetrics has them)."""
    store = open_store(url)
    store.write(
        [
            Series(
                SeriesKey.of(name, labels),
                np.array([t for t, _ in samples], dtype=np.int64) * 1_000_000,
                np.array([v for _, v in samples]),
            )
            for name, labels, samples in series
        ]
    )
    return store


def om_value(v: float) -> str:
    """A float as OpenMetrics spells it (NaN, +Inf, -Inf, else the shortest repr)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def promtool_values(values: Iterable[float | None]) -> str:
    """Input series values as ``promtool test rules`` reads them (``_`` is a missing sample)."""
    return " ".join("_" if v is None else om_value(v) for v in values)


def openmetrics_text(series: Iterable[OMSeries]) -> str:
    """One gauge family per metric name, each series' samples in time order."""
    by_name: dict[str, list[OMSeries]] = {}
    for s in series:
        by_name.setdefault(s[0], []).append(s)
    lines = []
    for name, members in by_name.items():
        lines.append(f"# TYPE {name} gauge")
        for _, labels, samples in members:
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            head = f"{name}{{{text}}}" if text else name
            lines += [f"{head} {om_value(v)} {t // 1000}.{t % 1000:03d}" for t, v in samples]
    return "\n".join([*lines, "# EOF", ""])


@contextmanager
def backfilled_prometheus(
    root: Path, openmetrics: str, *, rules: str | None = None, alertmanager: str | None = None
) -> Iterator[str]:
    """Serve ``openmetrics`` from a fresh Prometheus; yields its base URL.

    ``rules``: a rule file's text, which Prometheus evaluates every second (on its clock);
    ``alertmanager``: the ``host:port`` of an Alertmanager Prometheus sends its alerts to.
    """
    prom, promtool = binary("prometheus"), binary("promtool")
    (root / "data.om").write_text(openmetrics)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "data.om", "tsdb"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = "global:\n  scrape_interval: 1h\n"
    if rules is not None:
        (root / "rules.yml").write_text(rules)
        config += f"  evaluation_interval: 1s\nrule_files: [{root / 'rules.yml'}]\n"
    if alertmanager is not None:
        config += (
            f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: [{alertmanager}]}}]\n"
        )
    (root / "prometheus.yml").write_text(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        prom,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'tsdb'}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    if alertmanager is not None:
        # the first alerts may go before the Alertmanager is discovered: resend soon
        argv.append("--rules.alert.resend-delay=1s")
    with running(argv, f"{url}/-/ready", log=Path(root / "prometheus.log")):
        yield url


def query_range_all(
    url: str, promql: str, start: float, end: float, step: float
) -> list[tuple[dict[str, str], dict[int, float]]]:
    """Every series of a range query: (labels, {time in ms: value})."""
    resp = requests.get(
        f"{url}/api/v1/query_range",
        params={"query": promql, "start": start, "end": end, "step": step},
        timeout=60,
    )
    resp.raise_for_status()
    return [
        (r["metric"], {round(float(t) * 1000): float(v) for t, v in r["values"]})
        for r in resp.json()["data"]["result"]
    ]


def differential_seed(name: str = "METRICSKIT_DIFF_SEED") -> int:
    """The random differential tests' seed: ``$METRICSKIT_DIFF_SEED`` or a fresh one, printed.

    pytest shows it (with ``-s``, or in a failure's captured output) so a failing run can
    be repeated exactly: ``METRICSKIT_DIFF_SEED=<seed> pytest ...``.
    """
    given = os.environ.get(name)
    seed = int(given) if given else random.SystemRandom().randrange(2**32)
    print(f"{name}={seed}")
    return seed
