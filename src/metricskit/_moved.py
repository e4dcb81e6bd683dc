"""The module paths of metricskit 0.1, importable for one more release with a warning.

0.2 grouped the flat package into subpackages (``metricskit.rules`` is now
``metricskit.alerting.engine``, ...). The names in ``metricskit`` itself did not move; code
that imported a module by its old path keeps working through :class:`MovedModuleFinder`,
which answers an old path with the new module (the same object, not a copy) and a
:class:`DeprecationWarning` naming where it went. ``metricskit.report``, ``.server`` and
``.cli`` are packages now and export what those modules did.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "MovedModuleFinder", "install"]

_STORAGE_HELPERS = (
    "chunk_codec",
    "parquet_format",
    "parquet_layout",
    "parquet_write",
    "sql_batch",
    "sql_blocks",
    "sql_errors",
    "sql_flavors",
    "sql_reads",
    "sql_schema",
)
MOVED: dict[str, str] = {
    f"metricskit.{old}": f"metricskit.{new}"
    for old, new in {
        "aggregate": "query.aggregate",
        "analysis": "query.analysis",
        "channels": "alerting.channels",
        "collector": "collect.collector",
        "derive": "collect.derive",
        "events": "alerting.events",
        "exposition": "server.exposition",
        "grafana": "report.grafana",
        "notify": "alerting.notify",
        "performance": "query.performance",
        "performance_rules": "alerting.performance_rules",
        "promql": "query.range_functions",
        "recommendations": "report.recommendations",
        "report_html": "report.html",
        "report_types": "report.types",
        "rules": "alerting.engine",
        "rules_model": "alerting.rules_model",
        "sources": "collect.sources",
        # 0.1's storage helper modules, private now: plugins use metricskit.storage
        **{f"storage.{m}": f"storage._{m}" for m in _STORAGE_HELPERS},
        "trends": "report.trends",
    }.items()
}
"""Old module path -> new one; a moved package's submodules follow it."""


def new_path(fullname: str) -> str | None:
    """Where the 0.1 module ``fullname`` lives now, or None if it did not move."""
    if not fullname.startswith("metricskit."):  # the finder sees every import in the process
        return None
    if fullname in MOVED:
        return MOVED[fullname]
    package = fullname.rpartition(".")[0]
    while package:
        if package in MOVED:
            return f"{MOVED[package]}.{fullname[len(package) + 1 :]}"
        package = package.rpartition(".")[0]
    return None


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta path finder that resolves the old paths in :data:`MOVED`."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for an old path; None for everything else."""
        if new_path(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """Use the default module object; :meth:`exec_module` swaps in the real one."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Put the moved module in ``sys.modules`` under the old name too."""
        target = new_path(module.__name__)
        assert target is not None
        warnings.warn(
            f"{module.__name__} moved to {target} in metricskit 0.2 and the old path goes "
            "away in 0.3; import from the new path or from metricskit itself",
            DeprecationWarning,
            stacklevel=2,
        )
        # The import system reads sys.modules after exec_module, so the importer gets the
        # real module, whose __spec__ stays its own.
        sys.modules[module.__name__] = importlib.import_module(target)


def install() -> None:
    """Add the finder once, before the normal ones.

    First, because the path finder would otherwise find a moved package's submodule
    (``metricskit.channels.slack``) again under its old name and load it a second time,
    with classes of its own. Only the old paths match, and none of them exists any more.
    """
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
