"""The ``metricskit`` command (also ``python -m metricskit``): :func:`~metricskit.cli.main.main`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metricskit.cli.main import cli, main

__all__ = ["cli", "main"]


def __getattr__(name: str) -> Any:
    # imported on first use, so that importing one module of the package stays cheap
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("metricskit.cli.main"), name)
    globals()[name] = value
    return value
