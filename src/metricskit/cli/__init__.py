"""The ``metricskit`` command (also ``python -m metricskit``).

:func:`~metricskit.cli.commands.main` runs it; ``metricskit.cli.main`` is the same function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metricskit._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from metricskit.cli.commands import cli, main

__all__ = ["cli", "main"]

__getattr__ = _lazy_exports(__name__, dict.fromkeys(__all__, "metricskit.cli.commands"))
