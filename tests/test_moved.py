"""0.1's module paths still import, as the new modules themselves, with a DeprecationWarning."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import metricskit
from metricskit._moved import MOVED, new_path

SRC = Path(metricskit.__file__).parent


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    assert new_path(old) == MOVED[old]
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__ is not None and module.__spec__.name == MOVED[old]


def test_old_paths_exist_no_more_and_new_ones_do() -> None:
    assert new_path("metricskit.sources.http") == "metricskit.collect.sources.http"
    assert new_path("metricskit.store") is None
    for old, new in MOVED.items():
        relative = old.removeprefix("metricskit.").replace(".", "/")
        assert not (SRC / f"{relative}.py").exists() and not (SRC / relative).exists(), old
        assert importlib.util.find_spec(new) is not None, new


def test_a_submodule_of_a_moved_package_is_loaded_once() -> None:
    code = (
        "import warnings, sys; warnings.simplefilter('ignore'); import metricskit\n"
        "from metricskit.channels.slack import SlackChannel as Old\n"
        "from metricskit.alerting.channels.slack import SlackChannel as New\n"
        "from metricskit.sources.http import HttpCheck as OldCheck\n"
        "from metricskit.collect.sources.http import HttpCheck as NewCheck\n"
        "assert Old is New and OldCheck is NewCheck\n"
        "assert sys.modules['metricskit.channels.slack'] is "
        "sys.modules['metricskit.alerting.channels.slack']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_report_server_and_cli_packages_export_what_their_modules_did() -> None:
    from metricskit.cli import main
    from metricskit.cli.commands import main as real_main
    from metricskit.report import Reporter, ReportSettings
    from metricskit.server import MetricsServer, create_app

    assert main is real_main
    assert Reporter is metricskit.Reporter and ReportSettings is metricskit.ReportSettings
    assert MetricsServer.__module__ == create_app.__module__ == "metricskit.server.app"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        importlib.import_module("metricskit.report").nothing  # noqa: B018


def test_a_new_path_does_not_warn() -> None:
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import metricskit as mk\n"
        "mk.RuleEngine, mk.Collector, mk.Reporter, mk.Notifier, mk.sources\n"
        "import metricskit.alerting.engine, metricskit.server.app, metricskit.cli.commands\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Every public module of metricskit 0.1 (git ls-tree of the last flat-layout commit,
# 423cc54^, without the private ones): each still imports, by its old path.
MODULES_0_1 = [
    "aggregate",
    "analysis",
    "catalog",
    "channels",
    "channels.alertmanager",
    "channels.base",
    "channels.email",
    "channels.log",
    "channels.slack",
    "cli",
    "collector",
    "config",
    "derive",
    "errors",
    "events",
    "exposition",
    "grafana",
    "integrations",
    "integrations.asgi",
    "integrations.flask",
    "integrations.wsgi",
    "model",
    "notify",
    "performance",
    "performance_rules",
    "promql",
    "query",
    "recommendations",
    "recorder",
    "report",
    "report_html",
    "report_types",
    "rules",
    "rules_model",
    "server",
    "service",
    "sources",
    "sources.base",
    "sources.business",
    "sources.config",
    "sources.database",
    "sources.http",
    "sources.system",
    "storage",
    "storage.base",
    "storage.chunk_codec",
    "storage.memory",
    "storage.parquet",
    "storage.parquet_format",
    "storage.parquet_layout",
    "storage.parquet_write",
    "storage.registry",
    "storage.sql",
    "storage.sql_batch",
    "storage.sql_blocks",
    "storage.sql_errors",
    "storage.sql_flavors",
    "storage.sql_reads",
    "storage.sql_schema",
    "store",
    "testing",
    "testing.channels",
    "testing.clock",
    "testing.conformance",
    "testing.require",
    "trends",
]


@pytest.mark.parametrize("old", MODULES_0_1)
def test_every_public_module_path_of_0_1_imports(old: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(f"metricskit.{old}")


def _imported_names(code: str) -> set[str]:
    """Every module path ``code`` imports, ``from a import b`` counted as ``a.b`` too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _shipped_code() -> dict[str, str]:
    root = SRC.parent.parent
    code = {
        str(path): path.read_text()
        for folder in ("src", "examples", "benchmarks", "backends")
        for path in (root / folder).rglob("*.py")
    }
    for notebook in (root / "examples").rglob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                code[f"{notebook}[{i}]"] = "".join(cell["source"])
    for page in (root / "docs").glob("*.md"):
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            code[f"{page}[{i}]"] = block
    return code


def test_shipped_code_and_docs_import_no_0_1_path() -> None:
    # what users copy must not teach them a path that goes away in 0.3 (the notebook's
    # `from metricskit import performance, trends` warned in every run)
    old = {
        where: sorted(n for n in _imported_names(code) if new_path(n) is not None)
        for where, code in _shipped_code().items()
    }
    assert {where: names for where, names in old.items() if names} == {}
