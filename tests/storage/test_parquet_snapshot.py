"""parquet:// root key snapshot (``_keys.json``): restarts, a second process, crashes.

The snapshot lets a new process answer ``keys()`` and ``latest()`` without listing one
directory per day. These tests hold it to never being *wrong*: whatever a writer was
doing when it died, a new process sees every acknowledged sample, and the next writer
makes the snapshot current again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.services import require_module

require_module("pyarrow")

from metricskit.model import Selector, Series, SeriesKey  # noqa: E402
from metricskit.storage._parquet_layout import generation  # noqa: E402
from metricskit.storage.base import MAX_NS, MIN_NS  # noqa: E402
from metricskit.storage.parquet import ParquetBackend  # noqa: E402
from metricskit.store import Store  # noqa: E402

SRC = str(Path(__file__).parents[2] / "src")
T0 = 1_795_046_400 * 10**9
DAY = 86_400 * 10**9


def _key(i: int) -> SeriesKey:
    return SeriesKey.of("test.snap.g", {"i": str(i)})


def _day_of_samples(i: int, day: int, n: int = 24) -> Series:
    """``n`` hourly samples of series ``i`` on day ``day``; values encode both."""
    ts = T0 + day * DAY + np.arange(n, dtype=np.int64) * (DAY // n)
    return Series(_key(i), ts, np.full(n, i * 1000.0 + day))


def _snapshot(root: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((root / "_keys.json").read_text())
    return doc


def _is_current(root: Path) -> bool:
    return _snapshot(root)["token"] == generation(str(root))


def _truncate_data_files(partition: Path) -> None:
    """Damage every data file of a partition: any read of it raises CorruptDataError."""
    for f in partition.glob("*.parquet"):
        f.write_bytes(f.read_bytes()[:-40])


def _fill(root: Path, days: int, dead_after: int) -> None:
    """Series 0-2 get a sample every day; series 3 stops after day ``dead_after``."""
    with ParquetBackend(f"parquet://{root}") as backend:
        for day in range(days):
            batch = [_day_of_samples(i, day) for i in range(3)]
            if day <= dead_after:
                batch.append(_day_of_samples(3, day))
            backend.write(batch)
            backend.flush()


def test_a_restarted_process_reads_keys_and_latest_from_the_snapshot(tmp_path: Path) -> None:
    _fill(tmp_path, days=12, dead_after=4)
    doc = _snapshot(tmp_path)
    assert _is_current(tmp_path)
    newest = {json.loads(tags)["i"]: day for _, tags, day in doc["keys"]}  # type: ignore[union-attr]
    first_day = T0 // DAY
    assert newest == {
        "0": first_day + 11,
        "1": first_day + 11,
        "2": first_day + 11,
        "3": first_day + 4,
    }
    # Damage the days between the dead series' last day and today: a new process that
    # listed or opened them would raise; one using the snapshot never touches them.
    for day in range(5, 11):
        date = np.datetime64(T0 + day * DAY, "ns").astype("datetime64[D]")
        _truncate_data_files(tmp_path / f"day={date}")
    store = Store(ParquetBackend(f"parquet://{tmp_path}"))
    assert [k.tags["i"] for k in store.backend.keys()] == ["0", "1", "2", "3"]
    latest = {k.tags["i"]: (ts, v) for k, ts, v in store.latest()}
    last_ts = T0 + 11 * DAY + 23 * (DAY // 24)
    assert latest["0"] == (last_ts, 11.0)
    assert latest["2"] == (last_ts, 2011.0)
    # the dead series: straight to its newest day (day 4), skipping the damaged ones
    assert latest["3"] == (T0 + 4 * DAY + 23 * (DAY // 24), 3004.0)
    assert [k.tags["i"] for k in store.backend.select(Selector.of("test.snap.g", {"i": "3"}))] == [
        "3"
    ]
    store.close()


def test_without_a_current_snapshot_everything_is_listed_and_the_next_write_rebuilds_it(
    tmp_path: Path,
) -> None:
    _fill(tmp_path, days=5, dead_after=2)
    want = Store(ParquetBackend(f"parquet://{tmp_path}")).latest()
    for damage in ("missing", "garbage", "stale token"):
        if damage == "missing":
            (tmp_path / "_keys.json").unlink()
        elif damage == "garbage":
            (tmp_path / "_keys.json").write_text('{"version": 1, "token": ')
        else:
            doc = _snapshot(tmp_path)
            doc["keys"] = []  # would hide every series, were it trusted
            doc["token"] = "0" * 32
            (tmp_path / "_keys.json").write_text(json.dumps(doc))
        store = Store(ParquetBackend(f"parquet://{tmp_path}"))
        assert store.latest() == want, damage
        assert len(list(store.backend.keys())) == 4, damage
        store.close()
        # the next flush rebuilds it from every partition, the dead series included
        with ParquetBackend(f"parquet://{tmp_path}") as writer:
            writer.write([_day_of_samples(0, 4)])  # a rewrite of the same samples
        assert _is_current(tmp_path), damage
        assert len(_snapshot(tmp_path)["keys"]) == 4, damage  # type: ignore[arg-type]


def test_deleting_series_drops_them_from_the_snapshot(tmp_path: Path) -> None:
    _fill(tmp_path, days=6, dead_after=2)
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        assert backend.delete_before(T0 + 3 * DAY) > 0  # all of series 3
    assert _is_current(tmp_path)
    assert len(_snapshot(tmp_path)["keys"]) == 3  # type: ignore[arg-type]
    fresh = ParquetBackend(f"parquet://{tmp_path}")
    assert _key(3) not in set(fresh.keys())
    assert fresh.last(_key(3), MIN_NS, MAX_NS) is None
    fresh.close()


# -- a second process ---------------------------------------------------------------------

_WRITER = f"""
import sys
import numpy as np
from metricskit.model import Series, SeriesKey
from metricskit.storage.parquet import ParquetBackend

root, rounds = sys.argv[1], int(sys.argv[2])
T0, DAY = {T0}, {DAY}
backend = ParquetBackend("parquet://" + root, max_files_per_partition=3)
for r in range(rounds):
    # round r adds series r and a new day, and rewrites older days' files (compaction)
    ts = T0 + r * DAY // 4 + np.arange(50, dtype=np.int64) * 10**9
    backend.write([Series(SeriesKey.of("test.snap.g", {{"i": str(i)}}), ts, ts / 1e9 + i)
                   for i in range(r + 1)])
    backend.flush()
    print(r, flush=True)
backend.close()
"""


def test_a_second_process_writing_while_the_first_reads(tmp_path: Path) -> None:
    reader = Store(ParquetBackend(f"parquet://{tmp_path}"))
    rounds = 40
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), str(rounds)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen_keys = 0
    seen_ts: dict[SeriesKey, int] = {}
    for line in proc.stdout:
        acked = int(line)
        # everything the writer acknowledged is visible; nothing seen before goes away
        keys = list(reader.backend.keys())
        assert len(keys) >= max(seen_keys, acked + 1)
        seen_keys = len(keys)
        for key, ts, _ in reader.latest():
            assert ts >= seen_ts.get(key, ts)
            seen_ts[key] = ts
        assert len(seen_ts) >= acked + 1
    assert proc.wait(timeout=60) == 0
    want_ts = T0 + (rounds - 1) * DAY // 4 + 49 * 10**9
    assert {ts for _, ts, _ in reader.latest()} == {want_ts}
    assert len(reader.latest()) == rounds
    assert _is_current(tmp_path)
    assert not list((tmp_path / "_dirty").iterdir())
    reader.close()


# -- crashes ---------------------------------------------------------------------------------

# The writer SIGKILLs itself at one point of a flush: the real code runs up to there.
_CRASHER = f"""
import os, signal, sys
import numpy as np
from metricskit.model import Series, SeriesKey
from metricskit.storage import _parquet_snapshot, parquet
from metricskit.storage.parquet import ParquetBackend

root, at, new_series = sys.argv[1], sys.argv[2], int(sys.argv[3])
T0, DAY = {T0}, {DAY}

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if at == "snapshot rename" and str(dst).endswith("_keys.json"):
        die()
    if at == "data rename" and str(dst).endswith(".parquet"):
        die()
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
if at == "generation":
    _parquet_snapshot.set_generation = die
if at == "dirty mark removal":
    parquet.clear_dirty = die

backend = ParquetBackend("parquet://" + root)
ts = T0 + 3 * DAY + np.arange(10, dtype=np.int64) * 10**9
backend.write([Series(SeriesKey.of("test.snap.g", {{"i": str(new_series)}}), ts, ts / 1e9)])
backend.flush()
print("acked", flush=True)
"""

CRASH_POINTS = ["data rename", "snapshot rename", "generation", "dirty mark removal"]


@pytest.mark.parametrize("at", CRASH_POINTS)
def test_a_writer_killed_while_updating_the_snapshot_loses_and_hides_nothing(
    tmp_path: Path, at: str
) -> None:
    _fill(tmp_path, days=3, dead_after=1)
    before = Store(ParquetBackend(f"parquet://{tmp_path}")).latest()
    done = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(tmp_path), at, "7"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "acked" not in done.stdout
    # A new process sees every acknowledged sample, and whatever of series 7 a file
    # holds it sees through keys(), latest() and read() alike (never one without another).
    store = Store(ParquetBackend(f"parquet://{tmp_path}"))
    latest = store.latest()
    assert [x for x in latest if x[0] != _key(7)] == before
    keys = set(store.backend.keys())
    stored = store.backend.read(_key(7), MIN_NS, MAX_NS)
    assert (_key(7) in keys) == bool(len(stored)) == any(k == _key(7) for k, _, _ in latest)
    if at != "data rename":
        assert len(stored) == 10  # its file was committed before the crash
    store.close()
    # the next writer leaves a current snapshot that lists every series
    with ParquetBackend(f"parquet://{tmp_path}") as writer:
        writer.write([_day_of_samples(0, 3)])
    assert _is_current(tmp_path)
    names = {json.loads(tags)["i"] for _, tags, _ in _snapshot(tmp_path)["keys"]}  # type: ignore[union-attr]
    assert names == {"0", "1", "2", "3"} | ({"7"} if len(stored) else set())
    assert not list((tmp_path / "_dirty").iterdir())


def test_sigkill_at_random_points_of_flushes_keeps_the_snapshot_truthful(tmp_path: Path) -> None:
    """20 kills at random moments of a flush of 3,000 series (a 200 kB snapshot)."""
    writer = f"""
import sys
import numpy as np
from metricskit.model import Series, SeriesKey
from metricskit.storage.parquet import ParquetBackend
root, run = sys.argv[1], int(sys.argv[2])
backend = ParquetBackend("parquet://" + root, max_files_per_partition=3)
r = 0
while True:
    ts = {T0} + (run * 7 + r) * {DAY} // 3 + np.arange(5, dtype=np.int64) * 10**9
    backend.write([Series(SeriesKey.of("test.snap.g", {{"i": str(i)}}), ts, ts / 1e9 + i)
                   for i in range(run * 150, run * 150 + 3000)])
    print("flushing", r, flush=True)
    backend.flush()
    print("acked", r, flush=True)
    r += 1
"""
    rng = np.random.default_rng(2718)
    acked_keys: set[SeriesKey] = set()
    for run in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", writer, str(tmp_path), str(run)],
            env={**os.environ, "PYTHONPATH": SRC},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        acked = False
        kill_in = int(rng.integers(0, 2))
        try:
            for line in proc.stdout:
                word, r = line.split()
                if word == "acked":
                    acked = True
                elif int(r) == kill_in:
                    time.sleep(float(rng.uniform(0, 0.15)))
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            rest = proc.communicate(timeout=60)[0]
        acked = acked or "acked" in rest
        if acked:
            acked_keys.update(_key(i) for i in range(run * 150, run * 150 + 3000))
        backend = ParquetBackend(f"parquet://{tmp_path}")
        keys = set(backend.keys())
        assert acked_keys <= keys
        # what keys() lists is exactly what the files hold (the snapshot hides nothing)
        (tmp_path / "_keys.json").rename(tmp_path / "_keys.json.saved")
        listed = set(ParquetBackend(f"parquet://{tmp_path}").keys())
        (tmp_path / "_keys.json.saved").rename(tmp_path / "_keys.json")
        assert keys == listed
        backend.close()
    assert acked_keys
