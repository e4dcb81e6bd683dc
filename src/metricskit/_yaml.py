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
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from metricskit.errors import ConfigError

__all__ = ["KeyPath", "Locator", "YamlDocument", "load_yaml", "load_yaml_text"]

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
    """SafeLoader that records, for each constructed node, its path and line."""


def _walk(
    loader: _Loader,
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    source: str | None,
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Hashable, int] = {}
        for key_node, value_node in node.value:
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
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _walk(loader, item, child, lines, source)


def load_yaml_text(text: str, path: str | None = None) -> YamlDocument:
    """Parse YAML ``text`` (``path`` only names it in errors); an empty text is ``None``."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(None, Locator({}), path)
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
