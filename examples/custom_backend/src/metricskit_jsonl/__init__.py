"""metricskit-jsonl: an example storage backend plugin for metricskit.

Installing this package registers the ``jsonl`` URL scheme through the
``metricskit.backends`` entry point, so ``metricskit.open_store("jsonl:///var/lib/metrics")``
opens a :class:`JsonlBackend` without any import by the application.
"""

from __future__ import annotations

from metricskit_jsonl.backend import JsonlBackend

__all__ = ["JsonlBackend"]
