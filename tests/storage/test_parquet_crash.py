"""parquet:// crash safety: a writer SIGKILLed mid-flush 20 times loses no acknowledged sample."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.services import require_module

require_module("pyarrow")

from metricskit.model import SeriesKey  # noqa: E402
from metricskit.storage.base import MAX_NS, MIN_NS  # noqa: E402
from metricskit.storage.parquet import ParquetBackend  # noqa: E402

SRC = str(Path(__file__).parents[2] / "src")
T0 = 1_795_046_400 * 10**9
HOUR = 3600 * 10**9
SERIES = 4
PER_ROUND = 20_000  # samples per series and round: a flush of a few tens of milliseconds

# Run ``run`` writes rounds until killed; round r of run j covers its own stretch of time
# (crossing a day boundary, so one flush commits two partitions), and the value encodes
# (j, r, i) so that any sample can be checked. "acked" goes out only after flush returned.
_WRITER = f"""
import sys
import numpy as np
from metricskit.model import Series, SeriesKey
from metricskit.storage.parquet import ParquetBackend

root, run = sys.argv[1], int(sys.argv[2])
T0, HOUR, SERIES, PER_ROUND = {T0}, {HOUR}, {SERIES}, {PER_ROUND}
backend = ParquetBackend("parquet://" + root, max_files_per_partition=3, flush_samples=10**9)
r = 0
while True:
    start = T0 + (run * 100 + r) * 30 * HOUR
    ts = start + np.arange(PER_ROUND, dtype=np.int64) * (30 * HOUR // PER_ROUND)
    batch = [
        Series(SeriesKey.of("test.crash.v", {{"i": str(i)}}), ts,
               np.full(PER_ROUND, run * 1_000_000 + r * 100 + i, dtype=np.float64))
        for i in range(SERIES)
    ]
    backend.write(batch)
    print("flushing", r, flush=True)
    backend.flush()
    print("acked", r, flush=True)
    r += 1
"""


def _round_ts(run: int, r: int) -> np.ndarray:
    start = T0 + (run * 100 + r) * 30 * HOUR
    return start + np.arange(PER_ROUND, dtype=np.int64) * (30 * HOUR // PER_ROUND)


def _kill_mid_flush(root: Path, run: int, rng: np.random.Generator) -> list[int]:
    """Start a writer, SIGKILL it during a flush; return the rounds it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), str(run)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[int] = []
    kill_in = int(rng.integers(0, 3))  # the flush of round 0, 1 or 2
    try:
        for line in proc.stdout:
            word, r = line.split()
            if word == "acked":
                acked.append(int(r))
            elif int(r) == kill_in:
                # somewhere inside this flush: writing, fsyncing, renaming or compacting
                time.sleep(float(rng.uniform(0, 0.06)))
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        rest = proc.communicate(timeout=60)[0]
    # an "acked" line printed before the kill landed still counts
    acked += [int(x.split()[1]) for x in rest.splitlines() if x.startswith("acked")]
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_sigkill_mid_flush_twenty_times_keeps_every_acknowledged_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(1313)
    acknowledged: dict[int, list[int]] = {}
    for run in range(20):
        acknowledged[run] = _kill_mid_flush(tmp_path, run, rng)
        # every kill: the store opens, lists and reads everything without error
        backend = ParquetBackend(f"parquet://{tmp_path}")
        keys = set(backend.keys())
        for i in range(SERIES):
            key = SeriesKey.of("test.crash.v", {"i": str(i)})
            if any(acknowledged.values()):
                assert key in keys
            got = backend.read(key, MIN_NS, MAX_NS)
            for j, rounds in acknowledged.items():
                for r in rounds:
                    ts = _round_ts(j, r)
                    lo, hi = np.searchsorted(got.timestamps, [ts[0], ts[-1] + 1])
                    np.testing.assert_array_equal(got.timestamps[lo:hi], ts)
                    assert np.all(got.values[lo:hi] == j * 1_000_000 + r * 100 + i)
            last = backend.last(key, MIN_NS, MAX_NS)
            if len(got):
                assert last == (int(got.timestamps[-1]), float(got.values[-1]))
        backend.stats()
        backend.close()
    assert sum(len(r) for r in acknowledged.values()) > 0
