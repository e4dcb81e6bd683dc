"""The ``metricskit`` command (also ``python -m metricskit``).

:func:`~metricskit.cli.commands.main` runs it; ``metricskit.cli.main`` is the same function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metricskit._lazy import lazy_exports

if TYPE_CHECKING:
    from metricskit.cli.commands import cli, main

__all__ = ["cli", "main"]

__getattr__ = lazy_exports(__name__, "metricskit.cli.commands", __all__)
