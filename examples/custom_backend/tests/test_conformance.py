"""The metricskit conformance suite, imported unchanged, run against JsonlBackend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import metricskit
import numpy as np
import pytest
from metricskit.errors import BackendError, CorruptDataError
from metricskit.model import Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.testing import BackendConformance

from metricskit_jsonl import JsonlBackend


class TestJsonlConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> Iterator[Callable[[], StorageBackend]]:
        opened: list[JsonlBackend] = []

        def open_() -> StorageBackend:
            backend = JsonlBackend(f"jsonl://{tmp_path / 'store'}")
            opened.append(backend)
            return backend

        yield open_
        for backend in opened:
            backend.close()


# What the suite cannot know about this backend: its files, and what a crash leaves.


def _key() -> SeriesKey:
    return SeriesKey.of("example.jsonl.x", {"host": "a"})


def _write(backend: JsonlBackend, ts: list[int], vs: list[float]) -> None:
    backend.write([Series(_key(), np.array(ts, np.int64), np.array(vs, np.float64))])


def test_entry_point_opens_it(tmp_path: Path) -> None:
    store = metricskit.open_store(f"jsonl://{tmp_path}")
    assert isinstance(store.backend, JsonlBackend)
    store.close()


def test_file_is_json_lines(tmp_path: Path) -> None:
    backend = JsonlBackend(f"jsonl://{tmp_path}")
    _write(backend, [20, 10], [2.5, float("nan")])
    backend.close()
    (path,) = tmp_path.glob("*.jsonl")
    assert path.read_text().splitlines() == [
        '{"name": "example.jsonl.x", "tags": {"host": "a"}}',
        '[10,"NaN"]',
        "[20,2.5]",
    ]


def test_crash_leftover_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    backend = JsonlBackend(f"jsonl://{tmp_path}")
    _write(backend, [1], [1.0])
    backend.close()
    (path,) = tmp_path.glob("*.jsonl")
    # what a crash between "write the temp file" and "os.replace" leaves behind
    torn = path.with_name(f".{path.name}.999.tmp")
    torn.write_text('{"name": "example.jsonl.x", "tags": {"host": "a"}}\n[1,9')
    reopened = JsonlBackend(f"jsonl://{tmp_path}")
    assert reopened.read(_key(), MIN_NS, MAX_NS).values.tolist() == [1.0]
    assert not torn.exists()
    reopened.close()


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    backend = JsonlBackend(f"jsonl://{tmp_path}")
    _write(backend, [1], [1.0])
    backend.close()
    (path,) = tmp_path.glob("*.jsonl")
    path.write_text(path.read_text() + "[2,oops]\n")
    reopened = JsonlBackend(f"jsonl://{tmp_path}")
    with pytest.raises(CorruptDataError, match=path.name):
        reopened.read(_key(), MIN_NS, MAX_NS)


def test_closed_backend_refuses_writes(tmp_path: Path) -> None:
    backend = JsonlBackend(f"jsonl://{tmp_path}")
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        _write(backend, [1], [1.0])


def test_url_without_directory_is_rejected() -> None:
    with pytest.raises(BackendError, match="names a directory"):
        JsonlBackend("jsonl://")
