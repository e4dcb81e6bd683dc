"""Config models and turning their failures into :class:`ConfigError` with file and line.

Every section of ``monitoring.yaml`` is a :class:`ConfigSection` (a frozen pydantic model
that refuses unknown keys) owned by the subpackage that uses it; :func:`validate_section`
validates a section from a loaded document, or from a plain mapping a user passes in
code, and any failure is one ``ConfigError`` naming the key path (and, from a document,
the file and line). Hand-written ``ConfigError`` messages that start with the dotted key
path they are about (``collection.enabled_metrics.system: ...``) are located by
:func:`locate_config_error`.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from metricskit._secrets import is_secret_key, redact
from metricskit._time import NS_PER_S, parse_duration
from metricskit._yaml import Locator, YamlDocument
from metricskit.errors import ConfigError, UnknownSectionError

__all__ = [
    "FIELD_ERROR",
    "ConfigSection",
    "Integer",
    "NonEmptyString",
    "Number",
    "PositiveSeconds",
    "Seconds",
    "describe_pydantic_error",
    "field_error",
    "known_keys",
    "locate_config_error",
    "pydantic_config_error",
    "validate_section",
]

FIELD_ERROR = "config_field"
"""``PydanticCustomError`` type for a model-level check that blames one key: its context
holds ``field`` (the key to point at) and ``message``; the error is reported at that key."""


def field_error(key: str | int, message: str) -> PydanticCustomError:
    """The error a model validator raises to blame ``key`` (a :data:`FIELD_ERROR`)."""
    return PydanticCustomError(FIELD_ERROR, "{message}", {"field": key, "message": message})


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


def _seconds(value: Any) -> float:
    # the seed writes seconds (300); "5m" reads too; both end up as float seconds
    return parse_duration(value) / NS_PER_S


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be > 0")
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]
"""A duration in seconds, written as a number of seconds or as ``"30s"``, ``"5m"``, ``"1h"``;
negative durations are refused."""
PositiveSeconds = Annotated[Seconds, AfterValidator(_positive)]
"""A :data:`Seconds` duration that must be more than zero (an interval)."""


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


NonEmptyString = Annotated[str, AfterValidator(_non_empty)]
"""A string with something in it besides whitespace."""


class ConfigSection(BaseModel):
    """A section (or a part of one) of ``monitoring.yaml``: frozen, unknown keys refused.

    ``repr()`` and ``str()`` show credentials (a store URL's password, an API key)
    redacted. Code written for the seed's plain YAML dict reads it as one too:
    ``section["key"]`` is the field, ``"key" in section`` says whether the file gave it.
    """

    # numbers are Number/Integer: ``port: true`` is a mistake to report, not a 1
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            # a nested section redacts its own fields (a channel's URL shows its host)
            shown = value if isinstance(value, ConfigSection) else redact(value, name or "")
            yield name, shown

    def __getitem__(self, key: str) -> Any:
        """``section["key"]``: the field ``key`` (its default when the file left it out)."""
        if key in type(self).model_fields:
            return getattr(self, key)
        fields = list(type(self).model_fields)
        near = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownSectionError(f"no key {key!r} in {type(self).__name__}{hint}; known: {fields}")

    def __contains__(self, key: object) -> bool:
        """Whether the file (or mapping) this was validated from gave ``key``."""
        return key in self.model_fields_set

    def get(self, key: str, default: Any = None) -> Any:
        """``section["key"]`` if ``key`` is one of its keys, else ``default``."""
        return getattr(self, key) if key in type(self).model_fields else default


def _unwrap(annotation: Any) -> Iterator[Any]:
    """What a value under ``annotation`` may be, optionals and annotations taken off."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        yield from _unwrap(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _unwrap(arg)
    elif annotation is not type(None):
        yield annotation


def _child(annotation: Any, part: Any) -> Any:
    """The annotation of the value at key (or index) ``part`` inside an ``annotation`` value."""
    for option in _unwrap(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            field = option.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        elif typing.get_origin(option) in (dict, Mapping):
            return typing.get_args(option)[1]
        elif typing.get_origin(option) in (list, tuple, Sequence):
            return typing.get_args(option)[0]
    return None


def known_keys(root: Any, loc: Sequence[Any]) -> list[str]:
    """The keys a model allows where ``loc`` (a path into a ``root`` value) points: the
    keys of the mapping holding ``loc[-1]``, for a did-you-mean."""
    annotation = root
    for part in loc[:-1]:
        annotation = _child(annotation, part)
    for option in _unwrap(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return list(option.model_fields)
    return []


_PRIORITY = {"extra_forbidden": 0, "missing": 2}
_DOTTED_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w-]+)*)")
_NOT_A_MAPPING = ("model_type", "model_attributes_type", "dict_type")


def _location(err: Mapping[str, Any]) -> tuple[Any, ...]:
    loc = tuple(err["loc"])
    if err["type"] == FIELD_ERROR:
        loc = (*loc, err["ctx"]["field"])
    # a mapping's key that failed its check: the key itself is the place
    return loc[:-1] if loc and loc[-1] == "[key]" else loc


def describe_pydantic_error(err: Mapping[str, Any], known: Sequence[str]) -> str:
    """One pydantic error as a sentence; unknown keys get a did-you-mean from ``known``."""
    loc = ".".join(str(p) for p in _location(err))
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        parent = ".".join(str(p) for p in err["loc"][:-1])
        hint = difflib.get_close_matches(key, known, n=1)
        if hint:
            return f"unknown key {key!r} in {parent} (did you mean {hint[0]!r}?)"
        listed = f"; known: {', '.join(known)}" if known else ""
        return f"unknown key {key!r} in {parent}{listed}"
    if err["type"] == "missing":
        return f"{loc}: required key missing"
    if err["type"] in _NOT_A_MAPPING:
        return f"{loc}: expected a mapping, not {type(err.get('input')).__name__}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == FIELD_ERROR:
        return f"{loc}: {message}"
    # the rejected value is echoed redacted (a password, a URL's secret path), and not at
    # all inside a secret mapping (a header's value under ``headers``)
    if any(isinstance(p, str) and is_secret_key(p) for p in err["loc"][:-1]):
        return f"{loc}: {message}"
    value = redact(err.get("input"), err["loc"][-1] if err["loc"] else "")
    # not twice: "unknown name 'cpu'", "a duration cannot be negative (-5)"
    shown = repr(value) if isinstance(value, str) else f"({value!r})"
    quoted = shown in message
    return f"{loc}: {message}" if quoted else f"{loc}: {message} (got {value!r})"


def pydantic_config_error(
    doc: YamlDocument,
    exc: ValidationError,
    known_keys: Callable[[Sequence[Any]], Sequence[str]],
    prefix: Sequence[Hashable] = (),
) -> ConfigError:
    """The :class:`ConfigError` for ``exc``: up to three problems, at the first one's line.

    A misspelt key shows up twice, as unknown and as a required key missing; the unknown
    one points at the exact line, so it goes first. ``prefix`` is the key path of the
    validated section inside ``doc``; ``known_keys`` gets paths without it.
    """
    errors = sorted(exc.errors(), key=lambda e: _PRIORITY.get(str(e["type"]), 1))
    paths = [(*prefix, *_location(e)) for e in errors]
    text = "; ".join(
        describe_pydantic_error({**e, "loc": (*prefix, *e["loc"])}, known_keys(tuple(e["loc"])))
        for e in errors[:3]
    )
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return doc.error(text + more, paths[0])


M = TypeVar("M", bound=BaseModel)

_NO_DOCUMENT = YamlDocument(None, Locator({}), None)


def validate_section(
    model: type[M], data: object, where: Sequence[Hashable], doc: YamlDocument | None = None
) -> M:
    """``data`` (a ``model`` already, a mapping, or ``None`` for the defaults) as a ``model``.

    ``where`` is the section's key path (``("notifications", "slack")``), which every
    message starts with; with the ``doc`` the data was read from, the error also names
    the file and the line.
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise pydantic_config_error(
            doc or _NO_DOCUMENT, exc, lambda loc: known_keys(model, loc), tuple(where)
        ) from None


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
