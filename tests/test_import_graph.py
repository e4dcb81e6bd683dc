"""Imports between metricskit's modules flow one way: no cycles (issue 12, boundaries).

The graph is read from the source with :mod:`ast`, not by importing it, so a cycle that
happens to work today (thanks to import order) still fails here. Only imports that run at
import time count: an import under ``if TYPE_CHECKING:`` or inside a function body (a lazy
import) is not an edge. A module's package ``__init__`` running first is Python's doing, not
an edge either.

Two granularities are checked: between *units* (a top-level module such as
``metricskit.query.aggregate``, or a whole subpackage such as ``metricskit.storage``), and between
modules inside one subpackage.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "metricskit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported: not function bodies, not TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_statements(block)
            for handler in node.handlers:
                yield from _import_time_statements(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _import_time_statements(node.body)


def _targets(node: ast.stmt, package: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(metricskit module, line) that one import statement in ``package`` imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == ROOT:
                yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        if base.split(".")[0] != ROOT:
            return
        for alias in node.names:
            # ``from metricskit.query import aggregate`` imports the submodule.
            sub = f"{base}.{alias.name}"
            yield (sub if sub in known else base), node.lineno


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported metricskit module, line) for each import-time import in ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _import_time_statements(tree.body):
        yield from _targets(node, _package_of(module, path), known)


def _unit(module: str) -> str:
    """``metricskit.storage.sql`` -> ``metricskit.storage``; the root package stays itself."""
    return ".".join(module.split(".")[:2])


Edges = dict[str, dict[str, list[str]]]


def _graph(node_of: dict[str, str]) -> Edges:
    """node -> {node it imports: ["file:line", ...]} over the modules ``node_of`` maps."""
    modules = _modules()
    known = set(modules)
    edges: Edges = {}
    for module, path in modules.items():
        if module not in node_of:
            continue
        source = node_of[module]
        edges.setdefault(source, {})
        for target, line in _imports(module, path, known):
            dest = node_of.get(target)
            if dest is None or dest == source:
                continue
            where = f"{path.relative_to(SRC)}:{line}"
            edges[source].setdefault(dest, []).append(where)
    return edges


def _cycles(edges: Edges) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _explain(edges: Edges, cycles: list[list[str]]) -> str:
    lines = []
    for component in cycles:
        lines.append("cycle: " + ", ".join(component))
        members = set(component)
        for source in component:
            for dest, where in sorted(edges.get(source, {}).items()):
                if dest in members:
                    lines.append(f"  {source} -> {dest} ({', '.join(where)})")
    return "\n".join(lines)


def _subpackages() -> list[str]:
    return sorted(m for m, p in _modules().items() if p.name == "__init__.py" and m != ROOT)


def test_the_graph_sees_the_imports() -> None:
    edges = _graph({m: _unit(m) for m in _modules()})
    assert "metricskit.storage" in edges["metricskit.query"]
    assert "metricskit.errors" in edges["metricskit.storage"]
    # the root package imports the store eagerly, the service only under TYPE_CHECKING
    assert "metricskit.store" in edges[ROOT]
    assert "metricskit.service" not in edges[ROOT]
    inside = _graph({m: m for m in _modules() if m.startswith("metricskit.query.")})
    # ``from metricskit.query import aggregate as agg`` is an edge to the submodule
    assert "metricskit.query.aggregate" in inside["metricskit.query.analysis"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges: Edges = {"a": {"b": ["a.py:1"]}, "b": {"c": ["b.py:1"]}, "c": {"a": ["c.py:1"]}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": ["a.py:1"]}, "b": {}}) == []


def test_no_import_cycle_between_top_level_modules_and_subpackages() -> None:
    edges = _graph({m: _unit(m) for m in _modules()})
    cycles = _cycles(edges)
    assert cycles == [], _explain(edges, cycles)


def test_no_module_imports_a_private_name_from_another() -> None:
    found = []
    for path in _modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _in_root(node.module):
                private = [a.name for a in node.names if a.name.startswith("_")]
                # a private *module* (``from metricskit.cli import _render``) is fine
                private = [n for n in private if f"{node.module}.{n}" not in _modules()]
                if private:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {', '.join(private)}")
    assert found == [], "\n".join(found)


def _in_root(module: str | None) -> bool:
    return module is not None and module.split(".")[0] == ROOT


@pytest.mark.parametrize("package", _subpackages())
def test_no_import_cycle_inside_a_subpackage(package: str) -> None:
    inside = {m: m for m in _modules() if m.startswith(package + ".")}
    edges = _graph(inside)
    cycles = _cycles(edges)
    assert cycles == [], _explain(edges, cycles)


# DESIGN.md's direction, lowest first: a unit may import its own layer and those below.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("_time", "_yaml", "_files", "_secrets", "_lazy", "model", "catalog"),
    ("_env", "_validation", "_pidlock", "_scheduler", "naming"),
    ("storage",),
    ("_buffer", "_series_buffer", "_histogram", "recorder", "store", "query", "integrations"),
    ("collect",),
    ("alerting",),
    ("report",),
    ("server", "config"),
    ("service",),
    ("cli", "testing", "__main__", "_moved", ""),
]


def _layer_of(unit: str) -> int:
    short = unit.removeprefix(ROOT).removeprefix(".")
    for rank, names in enumerate(LAYERS):
        if short in names:
            return rank
    raise AssertionError(f"{unit} has no layer in LAYERS: place it there")


def _all_imports(path: Path, module: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every metricskit import in ``path``, lazy ones included (a lazy import is still a
    dependency); ``TYPE_CHECKING`` imports are not (they are annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    checking = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) not in checking and isinstance(node, ast.stmt):
            yield from _targets(node, _package_of(module, path), known)


def test_imports_flow_down_the_layers() -> None:
    modules = _modules()
    known = set(modules)
    upward = []
    for module, path in modules.items():
        source = _unit(module)
        for target, line in _all_imports(path, module, known):
            dest = _unit(target)
            if dest != source and _layer_of(dest) > _layer_of(source):
                upward.append(f"{path.relative_to(SRC)}:{line}: {source} -> {dest}")
    assert upward == [], "imports against DESIGN.md's direction:\n" + "\n".join(upward)
