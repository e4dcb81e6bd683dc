"""Storage backends: the contract, the registry and the built-in backends.

For plugin authors, the package also exports :func:`merge_last_wins`, the merge every
backend applies to a series' chunks (see ``docs/writing-a-backend.md``).
"""

from metricskit.storage._merge import merge_last_wins

__all__ = ["merge_last_wins"]
