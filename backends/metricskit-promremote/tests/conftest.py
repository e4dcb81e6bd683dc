"""Real VictoriaMetrics and Prometheus servers, started on 127.0.0.1 by the tests.

A missing binary skips the tests that need it, unless ``METRICSKIT_REQUIRE_SERVICES=1``
(as in CI), which makes it a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from metricskit.testing.require import missing

from metricskit_promremote.servers import (
    Server,
    ServerNotAvailable,
    start_prometheus,
    start_victoriametrics,
)


def _start(
    starter: Callable[[Path], contextlib.AbstractContextManager[Server]], path: Path
) -> Iterator[Server]:
    try:
        with starter(path) as server:
            yield server
    except ServerNotAvailable as exc:
        missing(str(exc))


@pytest.fixture(scope="session")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(start_victoriametrics, tmp_path_factory.mktemp("vm"))


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(start_prometheus, tmp_path_factory.mktemp("prom"))


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "services: needs a real server started by the test")
