"""The backend conformance suite against a real VictoriaMetrics."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from metricskit.model import Series, SeriesKey
from metricskit.storage.base import MAX_NS, MIN_NS, StorageBackend
from metricskit.testing import BackendConformance
from metricskit_promremote import VictoriaMetricsBackend
from metricskit_promremote.servers import Server

pytestmark = pytest.mark.services

_T0 = 1_795_046_400 * 10**9
_run = itertools.count()


class TestVictoriaMetricsConformance(BackendConformance):
    @pytest.fixture
    def open_backend(self, victoriametrics: Server) -> Iterator[Callable[[], StorageBackend]]:
        # One server for the session; each test starts from an empty store.
        opened: list[StorageBackend] = []

        def open_() -> StorageBackend:
            backend = VictoriaMetricsBackend(victoriametrics.url, rewrite=True)
            opened.append(backend)
            return backend

        first = open_()
        first.delete_before(MAX_NS)
        yield open_
        for backend in opened:
            backend.close()
