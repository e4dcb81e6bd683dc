"""Turning validation failures into :class:`ConfigError` with the file and line.

Two kinds of failure reach the config loader: pydantic ``ValidationError`` (sections
modelled with pydantic) and ``ConfigError`` messages from hand-written validators that
start with the dotted key path they are about (``collection.enabled_metrics.system: ...``).
Both are located in the YAML document through its :class:`~metricskit._yaml.Locator`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

from metricskit._secrets import redact
from metricskit._yaml import YamlDocument
from metricskit.errors import ConfigError

__all__ = [
    "FIELD_ERROR",
    "Integer",
    "Number",
    "describe_pydantic_error",
    "locate_config_error",
    "pydantic_config_error",
]

FIELD_ERROR = "config_field"
"""``PydanticCustomError`` type for a model-level check that blames one key: its context
holds ``field`` (the key to point at) and ``message``; the error is reported at that key."""


def _not_a_bool(value: Any) -> Any:
    # bool is an int to Python (and to pydantic's lax mode): ``threshold: true`` would be 1.0
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_not_a_bool)]
"""A float field that refuses ``true``/``false`` (a number written as a string, as
``${VAR}`` substitution gives, is still read)."""
Integer = Annotated[int, BeforeValidator(_not_a_bool)]
"""An int field that refuses ``true``/``false``."""

_PRIORITY = {"extra_forbidden": 0, "missing": 2}
_DOTTED_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w-]+)*)")


def _location(err: Mapping[str, Any]) -> tuple[Any, ...]:
    loc = tuple(err["loc"])
    if err["type"] == FIELD_ERROR:
        loc = (*loc, err["ctx"]["field"])
    return loc


def describe_pydantic_error(err: Mapping[str, Any], known: Sequence[str]) -> str:
    """One pydantic error as a sentence; unknown keys get a did-you-mean from ``known``."""
    loc = ".".join(str(p) for p in _location(err))
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        parent = ".".join(str(p) for p in err["loc"][:-1])
        hint = difflib.get_close_matches(key, known, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key {key!r} in {parent}{did}"
    if err["type"] == "missing":
        return f"{loc}: required key missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == FIELD_ERROR:
        return f"{loc}: {message}"
    # the rejected value is echoed, unless it sits under a secret key or holds a password
    key = err["loc"][-1] if err["loc"] else ""
    got = repr(redact(err.get("input"), key))
    return f"{loc}: {message}" if got in message else f"{loc}: {message} (got {got})"


def pydantic_config_error(
    doc: YamlDocument,
    exc: ValidationError,
    known_keys: Callable[[Sequence[Any]], Sequence[str]],
    prefix: Sequence[Hashable] = (),
) -> ConfigError:
    """The :class:`ConfigError` for ``exc``: up to three problems, at the first one's line.

    A misspelt key shows up twice, as unknown and as a required key missing; the unknown
    one points at the exact line, so it goes first. ``prefix`` is the key path of the
    validated section inside ``doc``.
    """
    errors = sorted(exc.errors(), key=lambda e: _PRIORITY.get(str(e["type"]), 1))
    paths = [(*prefix, *_location(e)) for e in errors]
    text = "; ".join(
        # the blamed field is added to the location once, by describe_pydantic_error
        describe_pydantic_error({**e, "loc": (*prefix, *e["loc"])}, known_keys(loc))
        for e, loc in zip(errors[:3], paths, strict=False)
    )
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return doc.error(text + more, paths[0])


def locate_config_error(doc: YamlDocument, exc: ConfigError) -> ConfigError:
    """Give a path-less ``ConfigError`` whose message starts with a key path its line."""
    if exc.path is not None:
        return exc
    match = _DOTTED_PATH.match(exc.message)
    path: tuple[Hashable, ...] = ()
    if match:
        parts = match.group(1).split(".")
        path = tuple(int(p) if p.isdigit() else p for p in parts)
    return doc.error(exc.message, path)
