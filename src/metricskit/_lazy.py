"""Names a package exports without importing the module behind them until first use.

``import metricskit`` must stay cheap for an application that only records (no pydantic,
SQLAlchemy or requests), and importing one small module of ``metricskit.report``,
``.server`` or ``.cli`` (``metricskit.server.exposition`` for ``metricskit metrics``)
should not pull in the rest of the package (Starlette, uvicorn, click).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``where`` from its
    module on first use; a name that is its module's own last part is the module itself
    (``metricskit.sources``)."""

    def __getattr__(name: str) -> Any:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name.endswith(f".{name}") else getattr(module, name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return __getattr__
