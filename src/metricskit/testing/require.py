"""Skip or fail a test whose server, program or optional package is missing: one policy.

A developer without, say, Prometheus or duckdb installed still runs everything else: the
test that needs it skips, naming what to install. Under ``METRICSKIT_REQUIRE_SERVICES=1``
(CI sets it) the same test fails instead, so a run cannot go green by skipping. Every test
of metricskit and of its plugins decides through :func:`missing`, so the rule is kept in
one place.

Needs pytest (imported by the test that calls it, not by ``metricskit.testing``).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["REQUIRE_ENV", "missing", "require_module", "required"]

REQUIRE_ENV = "METRICSKIT_REQUIRE_SERVICES"


def required() -> bool:
    """True when a missing requirement must fail the test rather than skip it."""
    return os.environ.get(REQUIRE_ENV) == "1"


def missing(reason: str) -> NoReturn:
    """Skip because ``reason``; under ``METRICSKIT_REQUIRE_SERVICES=1``, fail with it."""
    if required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def require_module(name: str, install: str = "") -> ModuleType:
    """Import ``name``, or :func:`missing` saying so and how to ``install`` it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = f": {install}" if install else " (pip install -e '.[dev]' installs it)"
        missing(f"{name} cannot be imported ({exc}){hint}")
