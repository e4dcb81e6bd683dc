"""parquet:// read path: last() pushdown, the listing token, one-series row groups, byte flips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.services import require_module

require_module("pyarrow")
pq = require_module("pyarrow.parquet")

from metricskit.errors import CorruptDataError  # noqa: E402
from metricskit.model import Selector, Series, SeriesKey  # noqa: E402
from metricskit.storage._parquet_write import MIN_GROUP_ROWS  # noqa: E402
from metricskit.storage.base import MAX_NS, MIN_NS  # noqa: E402
from metricskit.storage.parquet import ParquetBackend  # noqa: E402

DAY = 86_400 * 10**9
T0 = 1_795_046_400 * 10**9  # 2026-11-19T00:00:00Z
SRC = str(Path(__file__).parents[2] / "src")


def _files(root: Path) -> list[Path]:
    return sorted(root.glob("day=*/*.parquet"))


def _gauge(i: int, n: int, start: int = 0) -> Series:
    key = SeriesKey.of("test.read.gauge", {"series": f"s{i:03d}"})
    ts = T0 + (start + np.arange(n, dtype=np.int64)) * 10**9
    return Series(key, ts, np.round(np.sin(np.arange(n) + i) * 100, 2))


# -- one-series reads -----------------------------------------------------------------------


def test_row_groups_end_at_series_boundaries(tmp_path: Path) -> None:
    big = [_gauge(i, MIN_GROUP_ROWS + 100) for i in range(3)]  # one group each
    small = [_gauge(100 + i, 50) for i in range(400)]  # many share a group
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write(big + small)
    meta = pq.read_metadata(_files(tmp_path)[0])
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert sizes[:3] == [MIN_GROUP_ROWS + 100] * 3
    assert sum(sizes[3:]) == 400 * 50 and all(s % 50 == 0 for s in sizes[3:])
    assert max(sizes[3:]) < MIN_GROUP_ROWS + 50
    reopened = ParquetBackend(f"parquet://{tmp_path}")
    for s in (big[1], small[7]):
        got = reopened.read(s.key, MIN_NS, MAX_NS)
        np.testing.assert_array_equal(got.timestamps, s.timestamps)
        np.testing.assert_array_equal(got.values, s.values)


# -- last() ---------------------------------------------------------------------------------


def test_last_answers_from_the_footer_without_decoding_pages(tmp_path: Path) -> None:
    """Pushdown, shown on real bytes: last() still answers once the data pages are damaged."""
    series = [_gauge(i, 500) for i in range(4)]
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write(series)
    victim = _files(tmp_path)[0]
    raw = bytearray(victim.read_bytes())
    for at in range(8, len(raw) // 2, 97):  # the data pages come first, the footer last
        raw[at] ^= 0xFF
    victim.write_bytes(bytes(raw))
    backend = ParquetBackend(f"parquet://{tmp_path}")
    with pytest.raises(CorruptDataError):
        backend.read(series[2].key, MIN_NS, MAX_NS)
    expected = (int(series[2].timestamps[-1]), float(series[2].values[-1]))
    assert backend.last(series[2].key, MIN_NS, MAX_NS) == expected


def test_last_reads_only_the_day_end_cuts_into(tmp_path: Path) -> None:
    s = _gauge(0, 3 * 86_400 // 600)  # three days, one sample every 10 minutes
    s = Series(s.key, T0 + np.arange(s.timestamps.size, dtype=np.int64) * 600 * 10**9, s.values)
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write([s])
    backend = ParquetBackend(f"parquet://{tmp_path}")
    end = T0 + DAY + 3600 * 10**9 + 1
    at = int(np.searchsorted(s.timestamps, end)) - 1
    assert backend.last(s.key, MIN_NS, end) == (int(s.timestamps[at]), float(s.values[at]))
    assert backend.last(s.key, T0 + DAY + 3600 * 10**9 + 2, end) is None


_SECOND_PROCESS = """
import sys
from metricskit.model import SeriesKey
from metricskit.storage.parquet import ParquetBackend
from metricskit.storage.base import MIN_NS, MAX_NS
backend = ParquetBackend("parquet://" + sys.argv[1])
key = SeriesKey.of("test.read.gauge", {"series": "s001"})
print(backend.last(key, MIN_NS, MAX_NS))
print(len(list(backend.keys())))
"""


def _second_process(root: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _SECOND_PROCESS, str(root)],
        env={"PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.split("\n")


def test_last_and_keys_in_a_second_process_see_new_files(tmp_path: Path) -> None:
    writer = ParquetBackend(f"parquet://{tmp_path}")
    reader = ParquetBackend(f"parquet://{tmp_path}")
    writer.write([_gauge(1, 10)])
    writer.flush()
    key = _gauge(1, 10).key
    assert reader.last(key, MIN_NS, MAX_NS) == (T0 + 9 * 10**9, _gauge(1, 10).values[-1])
    # the reader keeps its listing; a new file (a new token) must show up all the same
    writer.write([_gauge(1, 5, start=100), _gauge(2, 3)])
    writer.flush()
    newest = (T0 + 104 * 10**9, float(_gauge(1, 5, start=100).values[-1]))
    assert reader.last(key, MIN_NS, MAX_NS) == newest
    assert len(list(reader.keys())) == 2
    assert _second_process(tmp_path)[:2] == [str(newest), "2"]
    # compaction and deletion in the writer also change what the reader must list
    writer.compact()
    writer.delete_before(T0 + 50 * 10**9)
    assert reader.last(key, MIN_NS, T0 + 60 * 10**9) is None
    assert reader.last(key, MIN_NS, MAX_NS) == newest
    assert list(reader.keys()) == [key]
    assert _second_process(tmp_path)[:2] == [str(newest), "1"]


def test_store_latest_reads_no_sample_of_long_histories(tmp_path: Path) -> None:
    """Store.latest over many days touches only footers: every data page is damaged."""
    from metricskit.store import Store

    n = 20 * 86_400 // 3600  # 20 days, hourly
    series = [
        Series(
            SeriesKey.of("test.latest.g", {"i": str(i)}),
            T0 + np.arange(n, dtype=np.int64) * 3600 * 10**9,
            np.arange(n, dtype=np.float64) + i,
        )
        for i in range(3)
    ]
    with ParquetBackend(f"parquet://{tmp_path}") as backend:
        backend.write(series)
    for f in _files(tmp_path):
        raw = bytearray(f.read_bytes())
        footer = len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")
        raw[4:footer] = bytes(footer - 4)  # every page; the footer stays
        f.write_bytes(bytes(raw))
    store = Store(ParquetBackend(f"parquet://{tmp_path}"))
    got = store.latest("test.latest.g")
    assert [(k.tags["i"], ts, v) for k, ts, v in got] == [
        (str(i), int(series[i].timestamps[-1]), float(n - 1 + i)) for i in range(3)
    ]


# -- corruption: real byte flips of a real file ---------------------------------------------


def _corruption_sample(root: Path) -> list[Series]:
    rng = np.random.default_rng(26)
    series = [_gauge(i, 700) for i in range(6)]
    counter = SeriesKey.of("test.read.counter_total", {"series": "c"})
    series.append(Series(counter, series[0].timestamps, np.cumsum(rng.integers(0, 9, 700)) * 1.0))
    odd = rng.normal(size=700)  # not decimal: the float column
    odd[5] = np.nan
    series.append(Series(SeriesKey.of("test.read.odd"), series[0].timestamps, odd))
    with ParquetBackend(f"parquet://{root}") as backend:
        backend.write(series)
    return series


_PATHS: dict[str, Callable[[ParquetBackend, Series], object]] = {
    "read": lambda b, s: b.read(s.key, MIN_NS, MAX_NS),
    "keys": lambda b, s: list(b.keys()),
    "last": lambda b, s: b.last(s.key, MIN_NS, MAX_NS),
    "last_cut": lambda b, s: b.last(s.key, MIN_NS, int(s.timestamps[-3])),
    "query": lambda b, s: list(b.query(Selector.of(s.name), MIN_NS, MAX_NS)),
    "stats": lambda b, s: b.stats(),
}


def _same(got: object, want: object) -> bool:
    if isinstance(got, Series) and isinstance(want, Series):
        return (
            got.key == want.key
            and got.timestamps.tobytes() == want.timestamps.tobytes()
            and got.values.tobytes() == want.values.tobytes()
        )
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want, strict=True))
    if type(got) is tuple and type(want) is tuple:  # a (ts, value) sample, not a key
        return got[0] == want[0] and np.array_equal([got[1]], [want[1]], equal_nan=True)
    return got == want


@pytest.mark.parametrize("path", sorted(_PATHS))
def test_byte_flips_raise_corrupt_data_or_read_the_truth(tmp_path: Path, path: str) -> None:
    """Item 26: a flipped byte anywhere gives CorruptDataError or the original answer."""
    pristine_root = tmp_path / "pristine"
    series = _corruption_sample(pristine_root)
    (victim,) = _files(pristine_root)
    raw = victim.read_bytes()
    probe = series[-1] if path != "read" else series[2]
    want = _PATHS[path](ParquetBackend(f"parquet://{pristine_root}"), probe)
    rng = np.random.default_rng(13)
    footer = len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")
    offsets = sorted(
        {*rng.integers(0, len(raw), 120).tolist(), *rng.integers(footer, len(raw), 80).tolist()}
    )
    outcomes = {"corrupt": 0, "same": 0}
    for at in offsets:
        flipped = bytearray(raw)
        flipped[at] ^= int(rng.integers(1, 256))
        root = tmp_path / f"flip{at}"
        target = root / victim.relative_to(pristine_root)
        target.parent.mkdir(parents=True)
        target.write_bytes(bytes(flipped))
        backend = ParquetBackend(f"parquet://{root}")
        try:
            got = _PATHS[path](backend, probe)
        except CorruptDataError as exc:
            assert str(target) in str(exc), exc
            outcomes["corrupt"] += 1
        else:
            assert _same(got, want), f"flip at byte {at} of {len(raw)} changed {path}()"
            outcomes["same"] += 1
        shutil.rmtree(root)
    assert outcomes["corrupt"] > 0


# -- partition summaries --------------------------------------------------------------------


def test_series_summary_is_used_only_when_it_matches_the_files(tmp_path: Path) -> None:
    with ParquetBackend(f"parquet://{tmp_path}/a") as backend:
        backend.write([_gauge(1, 10)])
    with ParquetBackend(f"parquet://{tmp_path}/b") as other:
        other.write([_gauge(2, 10, start=5)])
    (summary,) = (tmp_path / "a").glob("day=*/_series.json")
    doc = json.loads(summary.read_text())
    assert doc["series"] == [["test.read.gauge", '{"series":"s001"}']]
    # a file the summary does not list (copied in by hand): the footers are read instead
    # (the root key snapshot would not know the file either: a hand-made change needs it gone)
    (stranger,) = _files(tmp_path / "b")
    shutil.copy(stranger, summary.parent / stranger.name)
    (tmp_path / "a" / "_keys.json").unlink()
    assert [k.tags["series"] for k in ParquetBackend(f"parquet://{tmp_path}/a").keys()] == [
        "s001",
        "s002",
    ]
    # a damaged summary is ignored too
    summary.write_text("{not json")
    assert len(list(ParquetBackend(f"parquet://{tmp_path}/a").keys())) == 2
    # the next change rewrites it, and a new process reads keys from it
    writer = ParquetBackend(f"parquet://{tmp_path}/a")
    writer.write([_gauge(3, 10)])
    writer.close()
    assert len(json.loads(summary.read_text())["series"]) == 3
    assert _second_process(tmp_path / "a")[1] == "3"
    # deleting everything removes the partition, summary and all
    ParquetBackend(f"parquet://{tmp_path}/a").delete_before(MAX_NS)
    assert not summary.parent.exists()
