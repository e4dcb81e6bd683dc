"""Translating SQLAlchemy and DBAPI exceptions into :mod:`metricskit.errors` classes.

Messages name the URL with its password replaced by ``***`` and never carry SQL
parameters (a failed ``executemany`` would otherwise print thousands of rows).
"""

from __future__ import annotations

import errno
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import URL, make_url

from metricskit.errors import (
    BackendError,
    BackendImportError,
    BackendUnavailableError,
    StorageFullError,
    backend_error_from_oserror,
)

__all__ = ["INSTALL_HINT", "parse_url", "safe_url", "translate"]

INSTALL_HINT = "pip install 'metricskit[sql]'"

# SQLite primary result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``).
_SQLITE_BUSY, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 13, 14
# Transient conditions (a deadlock victim, a lock wait that timed out) are reported as
# "unavailable right now" too: the same call can simply be retried.
# PostgreSQL SQLSTATE: 53100 disk_full; class 08 connection errors, 28 authentication,
# 57P01..57P03 server shutting down or not yet accepting connections, 40001/40P01
# serialization failure / deadlock, 55P03 lock not available.
_PG_FULL = frozenset({"53100"})
_PG_UNAVAILABLE_PREFIXES = ("08", "28", "57P0", "40001", "40P01", "55P03")
# MySQL/MariaDB error numbers: 1021 disk full, 1114 table full; 1040 too many connections,
# 1044/1045 access denied, 1049 unknown database, 1205 lock wait timeout, 1213 deadlock,
# 2002/2003 cannot connect, 2006/2013 connection lost.
_MYSQL_FULL = frozenset({1021, 1114})
_MYSQL_UNAVAILABLE = frozenset({1040, 1044, 1045, 1049, 1205, 1213, 2002, 2003, 2006, 2013})


def parse_url(url: str | URL) -> URL:
    """Parse ``url``; a malformed one raises ``BackendError`` (without echoing a password)."""
    try:
        return make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise BackendError("invalid SQL storage URL (expected e.g. sqlite:///metrics.db)") from exc


def safe_url(url: URL) -> str:
    """``url`` as text with the password hidden."""
    return url.render_as_string(hide_password=True)


def _scrub(message: str, url: URL) -> str:
    password = url.password
    if password:
        message = message.replace(str(password), "***")
    return message


def _classify(orig: BaseException) -> type[BackendError]:
    """The error class for one DBAPI exception, by its driver's error code."""
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary == _SQLITE_FULL:
            return StorageFullError
        if primary in (_SQLITE_BUSY, _SQLITE_CANTOPEN):
            return BackendUnavailableError
        return BackendError
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_FULL:
            return StorageFullError
        if sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES):
            return BackendUnavailableError
        return BackendError
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        if args[0] in _MYSQL_FULL:
            return StorageFullError
        if args[0] in _MYSQL_UNAVAILABLE:
            return BackendUnavailableError
    return BackendError


def translate(exc: BaseException, url: URL, what: str, *, connecting: bool = False) -> BackendError:
    """Return the :class:`BackendError` to raise (``from exc``) for ``exc``.

    ``connecting`` marks errors met while opening a connection: short of a full disk,
    those mean the server or file cannot be reached (down, refused, bad password).
    """
    where = f"{what} on {safe_url(url)}"
    if isinstance(exc, ImportError):
        return BackendImportError(
            f"{where}: the database driver is not installed ({exc}); run: {INSTALL_HINT}"
        )
    if isinstance(exc, OSError) and not hasattr(exc, "sqlite_errorcode"):
        error = backend_error_from_oserror(exc, where)
        if connecting and type(error) is BackendError:
            return BackendUnavailableError(f"{where}: cannot reach the database file: {exc}")
        return error
    orig: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    message = _scrub(str(orig).strip() or type(orig).__name__, url)
    cls = _classify(orig)
    if cls is BackendError and (
        connecting or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
    ):
        cls = BackendUnavailableError
    if cls is StorageFullError:
        return StorageFullError(errno.ENOSPC, f"{where}: storage is full ({message})")
    if cls is BackendUnavailableError:
        return BackendUnavailableError(f"{where}: database unavailable: {message}")
    return BackendError(f"{where} failed: {message}")
