"""YAML loading that remembers where every value came from.

:func:`load_yaml` turns a file (or text) into plain Python data (dicts, lists, str, int,
float, bool, None) plus a :class:`Locator` that maps a key path such as
``("alerts", "system", "high_cpu", "operator")`` to its 1-based line, so a validator
working on the plain data can still say *where* a problem is::

    doc = load_yaml("config/monitoring.yaml")
    doc.data["alerts"]["system"]["high_cpu"]["operator"]          # "gt"
    raise doc.error("unknown operator", ("alerts", "system", "high_cpu", "operator"))
    # ConfigError: config/monitoring.yaml:7: unknown operator

Malformed YAML raises :class:`~metricskit.errors.ConfigError` with the file and the
line of PyYAML's problem mark. A key given twice in one mapping is an error too (PyYAML
would silently keep the last one, hiding a typo'd duplicate rule).

A hostile or broken file cannot make loading slow, huge or crash with a traceback: the
work is bounded by the file's size. Aliases may expand to at most
``EXPANSION_PER_BYTE`` values per byte of the file (a "billion laughs" alias bomb is
refused before anything is expanded), an alias may not contain itself, nesting stops at
``MAX_DEPTH`` levels and integers at ``MAX_INT_DIGITS`` digits; each is one
``ConfigError`` with the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from metricskit.errors import ConfigError

__all__ = [
    "EXPANSION_PER_BYTE",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "KeyPath",
    "Locator",
    "YamlDocument",
    "load_yaml",
    "load_yaml_text",
]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (a config needs fewer than ten)."""
EXPANSION_PER_BYTE = 16
"""Values a document may hold, after expanding aliases, per byte of its text (plus a
small allowance): generous for ``<<: *defaults`` reuse, fatal to an alias bomb."""
MAX_INT_DIGITS = 64
"""Longest integer literal accepted; values are float64, so longer ones mean nothing."""
_MIN_BUDGET = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"

KeyPath = tuple[Hashable, ...]
"""A path into loaded data: mapping keys and list indexes, outermost first."""


@dataclass(frozen=True)
class Locator:
    """Maps key paths of a loaded document to the 1-based lines they were written on.

    A mapping entry's path points at its key's line; a list item's at the item. Asking
    for a path that does not exist (a required key that is missing) gives the line of
    its nearest existing ancestor, which is where the user has to add it.
    """

    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: Sequence[Hashable]) -> int | None:
        """The line of ``path`` or of its nearest existing ancestor; ``None`` if unknown."""
        key = tuple(path)
        while True:
            found = self.lines.get(key)
            if found is not None:
                return found
            if not key:
                return None
            key = key[:-1]


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its plain ``data``, the ``locator`` and the ``path`` it came from."""

    data: Any
    locator: Locator
    path: str | None

    def line(self, key_path: Sequence[Hashable]) -> int | None:
        """Shortcut for ``self.locator.line(key_path)``."""
        return self.locator.line(key_path)

    def error(self, message: str, key_path: Sequence[Hashable] = ()) -> ConfigError:
        """A :class:`ConfigError` for ``message`` at ``key_path`` in this document."""
        return ConfigError(message, self.path, self.locator.line(key_path))


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds its work: nesting depth while scanning and composing, a
    recursive alias while composing, integer size and unreadable values while
    constructing; each refusal is a ConfigError with the line."""

    _depth = 0
    _open_anchors: set[str | None]
    source: str | None = None
    """The file name errors are reported against."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Scan ``[`` or ``{``; refused past ``MAX_DEPTH`` open ones, before the scanner's
        look-ahead for a possible key makes each further one cost the whole depth."""
        if self.flow_level >= MAX_DEPTH:
            raise ConfigError(
                f"nested more than {MAX_DEPTH} levels deep", self.source, self.line + 1
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, refusing deep nesting and an alias inside its own anchor."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        # PyYAML composes recursively: without a bound, deep nesting is a RecursionError
        if self._depth >= MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", self.source, line)
        anchor = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self._open_anchors:
                raise ConfigError(
                    f"alias *{anchor} is inside its own anchor &{anchor} (recursive alias)",
                    self.source,
                    line,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer, refusing literals too long to mean a number (or to parse quickly)."""
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise ConfigError(
                f"integer with {digits} digits is too large (at most {MAX_INT_DIGITS})",
                self.source,
                node.start_mark.line + 1,
            )
        return super().construct_yaml_int(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct ``node``; a value PyYAML cannot build (``2024-13-45``) names its line."""
        try:
            return super().construct_object(node, deep)
        except ConfigError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConfigError(
                f"cannot read value: {exc}", self.source, node.start_mark.line + 1
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _check_graph(root: yaml.Node, budget: int, source: str | None) -> None:
    """Refuse a node graph that, aliases expanded, holds more than ``budget`` values or
    nests deeper than ``MAX_DEPTH`` (aliases of aliases, each shallow, can stack up).

    Aliases make the composed graph a DAG; the expanded size and depth of each node are
    computed once, so this costs the number of distinct nodes. (A cycle, ``&a [*a]``, is
    refused while composing; the check here is a second net.)
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative depth-first walk: (node, children still to visit)
    stack: list[tuple[yaml.Node, list[yaml.Node]]] = [(root, _children(root))]
    on_path.add(id(root))
    while stack:
        node, todo = stack[-1]
        if todo:
            child = todo.pop()
            if id(child) in on_path:
                raise ConfigError(
                    "an alias refers to a value that contains it (recursive alias)",
                    source,
                    child.start_mark.line + 1,
                )
            if id(child) not in size:
                on_path.add(id(child))
                stack.append((child, _children(child)))
            continue
        stack.pop()
        on_path.discard(id(node))
        children = _children(node)
        total = 1 + sum(size[id(c)] for c in children)
        deepest = 1 + max((depth[id(c)] for c in children), default=0)
        if deepest > MAX_DEPTH:
            raise ConfigError(
                f"aliases nest values more than {MAX_DEPTH} levels deep",
                source,
                node.start_mark.line + 1,
            )
        if total > budget:
            raise ConfigError(
                f"aliases expand to more than {budget} values, too many for a file of "
                "this size (an alias bomb?)",
                source,
                node.start_mark.line + 1,
            )
        size[id(node)] = total
        depth[id(node)] = deepest


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _walk(
    loader: _Loader,
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    source: str | None,
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Hashable, int] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "mapping keys must be plain scalars", source, key_node.start_mark.line + 1
                )
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} (first given on line {seen[key]})", source, line
                )
            seen[key] = line
            child = (*path, key)
            lines[child] = line
            _walk(loader, value_node, child, lines, source)
        # ``<<: *defaults`` (or a list of them): merged keys point where they were written,
        # unless this mapping gives them itself
        for value_node in merged:
            for mapping in (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            ):
                merged_lines: dict[KeyPath, int] = {}
                _walk(loader, mapping, path, merged_lines, source)
                for key_path, line in merged_lines.items():
                    lines.setdefault(key_path, line)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _walk(loader, item, child, lines, source)


def load_yaml_text(text: str, path: str | None = None) -> YamlDocument:
    """Parse YAML ``text`` (``path`` only names it in errors); an empty text is ``None``."""
    try:
        loader = _Loader(text)
        loader.source = path
        loader._open_anchors = set()
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(None, Locator({}), path)
            _check_graph(node, _MIN_BUDGET + EXPANSION_PER_BYTE * len(text), path)
            lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
            _walk(loader, node, (), lines, path)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(f"malformed YAML: {problem}", path, line) from None
    except yaml.reader.ReaderError as exc:
        # a character YAML does not allow (a NUL, a control character): its line
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"malformed YAML: {exc.reason} {exc.character!r}", path, line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", path) from None
    return YamlDocument(data, Locator(lines), path)


def load_yaml(path: str | os.PathLike[str]) -> YamlDocument:
    """Load a YAML file; a missing or unreadable file is a :class:`ConfigError` too."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", name) from None
    return load_yaml_text(text, name)
