"""Connections, transactions and schema creation of the SQL backend (its base class).

Every driver error raised inside one of these context managers is translated into a
:class:`~metricskit.errors.BackendError` (see :mod:`._sql_errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.schema import CreateIndex, CreateTable

from metricskit.errors import BackendError
from metricskit.storage._sql_errors import safe_url, translate
from metricskit.storage._sql_flavors import WRITE_OPTION, insert_ignore
from metricskit.storage._sql_schema import SCHEMA_VERSION, Tables

__all__ = ["GENERATION_KEY", "VERSION_KEY", "SQLConnection"]

GENERATION_KEY = "generation"
"""The meta row bumped whenever series are deleted (cached series ids go stale)."""
VERSION_KEY = "schema_version"
"""The meta row holding the layout version of the tables."""


class SQLConnection:
    """How a SQL backend talks to its database; :class:`~.sql.SQLBackend` builds on it."""

    _url: sa.URL
    _tables: Tables
    _engine: sa.Engine
    _lock: contextlib.AbstractContextManager[Any]
    _closed: bool

    @property
    def url(self) -> str:
        """The store's URL with the password hidden."""
        return safe_url(self._url)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
            raise translate(exc, self._url, what) from exc
        except Exception as exc:
            if isinstance(exc, self._engine.dialect.loaded_dbapi.Error):
                raise translate(exc, self._url, what) from exc
            raise

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[sa.Connection]:
        if self._closed:
            raise BackendError(f"{what} on {self.url}: the backend is closed")
        with self._lock:
            try:
                conn = self._engine.connect()
            except (ImportError, OSError, sa_exc.SQLAlchemyError) as exc:
                raise translate(exc, self._url, what, connecting=True) from exc
            with self._guard(what), conn:
                yield conn

    @contextlib.contextmanager
    def _transaction(self, what: str, *, write: bool = False) -> Iterator[sa.Connection]:
        with self._connection(what) as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _cursor(self, what: str) -> Iterator[Any]:
        """A raw DBAPI cursor for single-statement reads (no per-row SQLAlchemy objects)."""
        with self._connection(what) as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                yield cur
            finally:
                cur.close()

    def _create_schema(self) -> int | None:
        """Create missing tables; upgrade a version-1 store. The version found (``None``:
        the tables were created just now)."""
        t = self._tables
        # Two processes may create the tables at once; IF NOT EXISTS makes the second a
        # no-op, and a race inside the catalog (PostgreSQL) is settled by one retry.
        for attempt in (1, 2):
            try:
                with self._transaction("open", write=True) as conn:
                    for table in (t.meta, t.series, t.samples, t.blocks):
                        conn.execute(CreateTable(table, if_not_exists=True))
                    for index in (*t.series.indexes, *t.blocks.indexes):
                        conn.execute(CreateIndex(index, if_not_exists=True))
                    version_query = sa.select(t.meta.c.value).where(t.meta.c.key == VERSION_KEY)
                    found = conn.execute(version_query).scalar_one_or_none()
                    conn.execute(
                        insert_ignore(self._engine.dialect.name, t.meta, "key"),
                        [{"key": VERSION_KEY, "value": SCHEMA_VERSION},
                         {"key": GENERATION_KEY, "value": 0}],
                    )  # fmt: skip
                # A new transaction: when another process inserted the rows first, this
                # one's snapshot (InnoDB's REPEATABLE READ) may predate its commit.
                with self._transaction("open", write=True) as conn:
                    version = conn.execute(version_query).scalar_one()
                    if version == 1:
                        # Version 1 = only head rows, a valid version-2 store; sealing them
                        # into blocks (compact) follows in its own transactions.
                        conn.execute(
                            sa.update(t.meta)
                            .where(t.meta.c.key == VERSION_KEY, t.meta.c.value == 1)
                            .values(value=SCHEMA_VERSION)
                        )
                break
            except BackendError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, sa_exc.IntegrityError):
                    raise
        if version > SCHEMA_VERSION:
            raise BackendError(
                f"{self.url}: tables {t.prefix}* have schema version {version}, newer than "
                f"this metricskit understands ({SCHEMA_VERSION}); upgrade metricskit"
            )
        return None if found is None else int(found)
