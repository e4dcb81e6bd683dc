"""The conformance suite every storage backend passes.

Subclass :class:`BackendConformance` and provide one fixture, ``open_backend``: a zero-arg
callable that opens (or reopens) the backend at one location, closing what it opened at
teardown::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def open_backend(self, tmp_path):
            opened = []
            def open_():
                backend = MyBackend(f"mine://{tmp_path}")
                opened.append(backend)
                return backend
            yield open_
            for backend in opened:
                backend.close()

Tests that need a capability the backend does not claim (``persistent``, ``deletes``)
skip with the reason.

The suite is three parts, one module each, composed here: the contract itself
(:mod:`metricskit.testing._contract_tests`), long series and ``last()``
(:mod:`metricskit.testing._block_tests`) and persistence
(:mod:`metricskit.testing._persistence_tests`). A new test goes in the part it checks.
"""

from __future__ import annotations

from metricskit.testing._block_tests import BlockTests
from metricskit.testing._contract_tests import ContractTests
from metricskit.testing._persistence_tests import PersistenceTests

__all__ = ["BackendConformance"]


class BackendConformance(ContractTests, BlockTests, PersistenceTests):
    """pytest tests of the :class:`~metricskit.storage.base.StorageBackend` contract."""
