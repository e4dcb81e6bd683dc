"""Which backend serves a URL: built-ins by scheme, then plugins from entry points.

Built-in backends are import strings, imported only when a URL asks for them, each with the
install hint for its optional dependency. A scheme that is not built in is looked up in the
``metricskit.backends`` entry-point group, and only then; a plugin can never replace a
built-in silently. :func:`register_backend` adds one at run time; replacing an existing
scheme, a built-in included, takes ``clobber=True`` and then really replaces it: a backend
registered at run time is looked up before the built-ins.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, NamedTuple

from metricskit.errors import (
    BackendError,
    BackendImportError,
    BackendNotFoundError,
    InvalidArgumentError,
)
from metricskit.storage.base import StorageBackend

__all__ = [
    "DEFAULT_URL",
    "ENTRY_POINT_GROUP",
    "available_schemes",
    "backend_class",
    "known_implementations",
    "open_backend",
    "register_backend",
]

DEFAULT_URL = "sqlite:///metrics.db"
"""The store used when none is named: a SQLite file in the working directory."""

ENTRY_POINT_GROUP = "metricskit.backends"


class _Builtin(NamedTuple):
    target: str
    install_hint: str | None


_SQL_HINT = "pip install 'metricskit[sql]'"
_BUILTINS: dict[str, _Builtin] = {
    "memory": _Builtin("metricskit.storage.memory:MemoryBackend", None),
    "sqlite": _Builtin("metricskit.storage.sql:SQLBackend", None),
    "postgresql": _Builtin("metricskit.storage.sql:SQLBackend", _SQL_HINT),
    "mysql": _Builtin("metricskit.storage.sql:SQLBackend", _SQL_HINT),
    "mariadb": _Builtin("metricskit.storage.sql:SQLBackend", _SQL_HINT),
    "parquet": _Builtin(
        "metricskit.storage.parquet:ParquetBackend", "pip install 'metricskit[parquet]'"
    ),
}
known_implementations = MappingProxyType(_BUILTINS)
"""Read-only view of the built-in schemes and the classes that serve them."""

_registered: dict[str, type[StorageBackend] | str] = {}
_lock = threading.Lock()


def register_backend(
    scheme: str, backend: type[StorageBackend] | str, *, clobber: bool = False
) -> None:
    """Serve URLs of ``scheme`` with ``backend`` (a class, or ``"module:Class"`` imported lazily).

    Registering a scheme that is built in or already registered raises
    :class:`~metricskit.errors.InvalidArgumentError` (a ``ValueError``) unless
    ``clobber=True``, which replaces it for this process: with
    ``register_backend("sqlite", MyBackend, clobber=True)``, ``open_store("sqlite://...")``
    opens ``MyBackend`` (``sqlite+driver://`` URLs too; the scheme is the part before ``+``).
    """
    scheme = scheme.lower()
    with _lock:
        if not clobber and (scheme in _BUILTINS or scheme in _registered):
            raise InvalidArgumentError(
                f"a backend for {scheme!r} already exists; pass clobber=True to replace it"
            )
        _registered[scheme] = backend


def _split_scheme(url: str) -> tuple[str, str]:
    """Return ``(base_scheme, full_scheme)``: ``postgresql+psycopg://`` -> ``postgresql``."""
    if "://" not in url:
        raise BackendNotFoundError(
            f"{url!r} is not a store URL; use e.g. 'sqlite:///metrics.db', 'memory://' or "
            f"'parquet:///path/to/dir' (known schemes: {', '.join(available_schemes())})"
        )
    full = url.split("://", 1)[0].lower()
    return full.split("+", 1)[0], full


def _entry_point_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def available_schemes() -> list[str]:
    """Every scheme that :func:`open_backend` can serve: built-in, registered and plugins."""
    return sorted({*_BUILTINS, *_registered, *_entry_point_names()})


def _import_target(target: str, scheme: str, hint: str | None) -> type[StorageBackend]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint_text = f"; install it with: {hint}" if hint else ""
        raise BackendImportError(
            f"the {scheme!r} backend needs a package that is missing ({exc}){hint_text}"
        ) from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, StorageBackend)):
        raise BackendError(f"{target} (for {scheme!r}) is not a StorageBackend subclass")
    return cls


def backend_class(scheme: str) -> type[StorageBackend]:
    """Return the backend class serving ``scheme`` (the part of a URL before ``://`` or ``+``)."""
    scheme = scheme.lower()
    # run-time registrations first: one for a built-in scheme exists only by clobber=True
    registered = _registered.get(scheme)
    if registered is not None:
        if isinstance(registered, str):
            return _import_target(registered, scheme, None)
        return registered
    builtin = _BUILTINS.get(scheme)
    if builtin is not None:
        return _import_target(builtin.target, scheme, builtin.install_hint)
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        try:
            cls = ep.load()
        except ImportError as exc:
            raise BackendImportError(
                f"the plugin backend {scheme!r} ({ep.value}) failed to import: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, StorageBackend)):
            raise BackendError(f"entry point {ep.value} for {scheme!r} is not a StorageBackend")
        return cls
    raise BackendNotFoundError(
        f"no storage backend for scheme {scheme!r}; known schemes: {', '.join(available_schemes())}"
    )


def open_backend(url: str, **options: Any) -> StorageBackend:
    """Open the backend a URL names; most users want :func:`metricskit.open_store` instead."""
    base, _full = _split_scheme(url)
    return backend_class(base).from_url(url, **options)
