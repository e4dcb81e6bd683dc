"""Names a package exports without importing the module behind them until first use.

``metricskit.report``, ``.server`` and ``.cli`` export what their main module defines, but
importing one small module of the package (``metricskit.server.exposition`` for
``metricskit metrics``) should not pull in the rest (Starlette, uvicorn, click).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, module: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``names`` from ``module`` on use."""
    exported = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in exported:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return __getattr__
