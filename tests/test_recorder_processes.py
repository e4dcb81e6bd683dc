"""The Recorder's durability promises, checked in a real child process that really dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from tests.services import require_module

T0 = 1_732_752_000
NS = 1_000_000_000

CRASHING_CHILD = """
import sys
import metricskit as mk
from metricskit.recorder import Recorder

rec = Recorder(mk.open_store(sys.argv[1]), batch_size=300, flush_interval=0.005)
depth = rec.bind("app.crash.bound", {{"k": "v"}})
i = 0
while True:
    for _ in range(100):
        if i % 2:
            depth.record(float(i), {t0} + i)
        else:
            rec.record("app.crash.plain", float(i), {{"k": "v"}}, timestamp={t0} + i)
        i += 1
    rec.flush()
    print(i, flush=True)  # everything below i is durable now
"""

EXITING_CHILD = """
import sys
import metricskit as mk
from metricskit.recorder import Recorder

rec = Recorder(mk.open_store(sys.argv[1]), batch_size=10**6, flush_interval=None)
for i in range(1234):
    rec.record("app.exit.test", float(i), timestamp={t0} + i)
# no flush, no close: the atexit hook must write the samples
"""


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        require_module("metricskit.storage.sql")
        return f"sqlite:///{tmp_path}/m.db"
    require_module("pyarrow")
    return f"parquet:///{tmp_path}/data"


def _child(script: str, url: str, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script).format(t0=T0))
    return subprocess.Popen(
        [sys.executable, str(path), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_sigkill_keeps_every_flushed_sample(kind: str, tmp_path: Path) -> None:
    url = _url(kind, tmp_path)
    proc = _child(CRASHING_CHILD, url, tmp_path)
    assert proc.stdout is not None
    durable = 0
    try:
        for _ in range(30):
            line = proc.stdout.readline()
            if not line:
                break
            durable = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert durable >= 30 * 100, err
    assert proc.returncode == -signal.SIGKILL

    with mk.open_store(url) as store:  # reopens cleanly after the crash
        seen: dict[int, float] = {}
        for name in ("app.crash.bound", "app.crash.plain"):
            for series in store.query(name, tags={"k": "v"}):
                secs = (series.timestamps // NS - T0).tolist()
                seen.update(zip(secs, series.values.tolist(), strict=True))
    missing = [i for i in range(durable) if i not in seen]
    assert missing == []
    assert all(seen[i] == float(i) for i in range(durable))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_interpreter_exit_flushes(kind: str, tmp_path: Path) -> None:
    url = _url(kind, tmp_path)
    proc = _child(EXITING_CHILD, url, tmp_path)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    with mk.open_store(url) as store:
        got = store.query("app.exit.test")
    assert len(got) == 1
    assert np.array_equal(got[0].values, np.arange(1234.0))
