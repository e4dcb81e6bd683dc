"""What differs between SQLite, PostgreSQL and MariaDB/MySQL in the SQL backend.

Each flavour knows how to configure connections, how to bulk-upsert samples through the
raw DBAPI connection (the hot path), how to "insert unless present", and how many bytes
the store uses. Statements are built with SQLAlchemy's dialect constructs and compiled
once; every value travels as a bound parameter.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateTable

from metricskit.errors import BackendError
from metricskit.storage._sql_schema import Tables

__all__ = ["WRITE_OPTION", "Flavor", "flavor_for", "normalize_url"]

WRITE_OPTION = "metricskit_write"
"""Execution option marking a connection whose transaction will write (SQLite: IMMEDIATE)."""

_DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


def normalize_url(url: URL) -> URL:
    """Map bare schemes to the drivers metricskit installs (psycopg 3, PyMySQL)."""
    if url.drivername in _DRIVERS:
        return url.set(drivername=_DRIVERS[url.drivername])
    if url.drivername == "postgres+psycopg":
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise BackendError(
            f"unsupported SQL database {url.get_backend_name()!r}: "
            "use sqlite://, postgresql:// or mysql:// / mariadb://"
        )
    return url


def insert_ignore(dialect_name: str, table: sa.Table, conflict: str) -> sa.Insert:
    """``INSERT`` that silently skips rows whose ``conflict`` column already exists."""
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[conflict])
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[conflict])
    return sa.insert(table).prefix_with("IGNORE")


class Flavor:
    """The behaviour shared by all databases; subclasses override what differs."""

    name = "generic"
    memory = False

    def __init__(self, url: URL, tables: Tables) -> None:
        self.url = url
        self.tables = tables

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for ``sqlalchemy.create_engine``."""
        # Positional placeholders let the hot paths pass plain tuples to executemany.
        return {"paramstyle": "format", "pool_pre_ping": True}

    def install(self, engine: sa.Engine) -> None:
        """Attach connection event listeners to ``engine``."""

    def prepare(self, engine: sa.Engine) -> None:
        """Compile the hot-path statements (after the first connection, so versions are known)."""

    def check_file(self, where: str) -> None:
        """Raise if the store's file was deleted or replaced since it was opened."""

    def insert_samples(
        self, dbapi_conn: Any, sid: Int64Array, ts: Int64Array, values: Float64Array
    ) -> None:
        """Upsert deduplicated, (series, ts)-sorted samples inside the open transaction."""
        raise NotImplementedError

    def bytes_used(self, conn: sa.Connection) -> int:
        """Bytes the store's tables occupy."""
        raise NotImplementedError

    def compile(self, engine: sa.Engine, stmt: sa.ClauseElement) -> str:
        """SQL text of ``stmt`` for this engine's DBAPI, positional parameters in order."""
        return str(stmt.compile(dialect=engine.dialect))


class SQLiteFlavor(Flavor):
    """SQLite: WAL, a busy timeout, IMMEDIATE write transactions, executemany upserts."""

    name = "sqlite"

    def __init__(self, url: URL, tables: Tables, busy_timeout: float) -> None:
        super().__init__(url, tables)
        self.busy_timeout_ms = int(busy_timeout * 1000)
        self.path = url.database or ""
        self.memory = self.path in ("", ":memory:") or url.query.get("mode") == "memory"
        self._upsert = ""
        self._identity: tuple[int, int] | None = None
        self._file = ""

    def engine_options(self) -> dict[str, Any]:
        """A single shared connection for in-memory stores, the default pool for files."""
        if self.memory:
            return {"poolclass": pool.StaticPool, "connect_args": {"check_same_thread": False}}
        if self.path:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        return {}

    def install(self, engine: sa.Engine) -> None:
        """Configure each new connection and take over BEGIN from the sqlite3 module."""
        memory, busy_ms = self.memory, self.busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level; SQLAlchemy's "begin" below issues BEGIN, so
            # writers can ask for IMMEDIATE and never hit SQLITE_BUSY on lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
                if not memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                    # NORMAL in WAL mode: a commit survives a process crash (the contract);
                    # only an OS crash or power loss can roll back the last commits.
                    cur.execute("PRAGMA synchronous = NORMAL")
                    # Checkpoint every ~40 MB instead of 4 MB: with many series each commit
                    # dirties a page per series, and fewer checkpoints write each page once.
                    cur.execute("PRAGMA wal_autocheckpoint = 10000")
                    cur.execute("PRAGMA journal_size_limit = 67108864")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def prepare(self, engine: sa.Engine) -> None:
        """Compile ``INSERT ... ON CONFLICT (series_id, ts) DO UPDATE``; note the file identity."""
        if not self.memory:
            # The driver opened the path made absolute then; a later chdir must not matter.
            self._file = os.path.abspath(self.path)
            self._identity = self._stat()
        samples = self.tables.samples
        stmt = sqlite.insert(samples).values(
            series_id=sa.bindparam("sid"), ts=sa.bindparam("ts"), value=sa.bindparam("v")
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id", "ts"], set_={"value": stmt.excluded.value}
        )
        self._upsert = self.compile(engine, stmt)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check_file(self, where: str) -> None:
        """SQLite writes on into an unlinked file without error: compare device and inode."""
        if self._identity is not None and self._stat() != self._identity:
            raise BackendError(
                f"{where}: the database file {self._file} was deleted or replaced after it "
                "was opened; writes would be lost, so they are refused (reopen the store)"
            )

    def insert_samples(
        self, dbapi_conn: Any, sid: Int64Array, ts: Int64Array, values: Float64Array
    ) -> None:
        """``executemany`` over plain Python tuples; SQLite itself stores NaN as NULL."""
        cur = dbapi_conn.cursor()
        try:
            cur.executemany(
                self._upsert, zip(sid.tolist(), ts.tolist(), values.tolist(), strict=True)
            )
        finally:
            cur.close()

    def bytes_used(self, conn: sa.Connection) -> int:
        """Pages in use times the page size, plus the write-ahead log."""
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        wal = 0
        if not self.memory:
            try:
                wal = os.path.getsize(f"{self.path}-wal")
            except FileNotFoundError:
                wal = 0
        return pages * page_size + wal


# PostgreSQL binary COPY: a tuple is int16 field count, then (int32 length, data) per
# field, big-endian; a NULL field is length -1 with no data.
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_TRAILER = b"\xff\xff"
_PG_ROW = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("ts", ">i8"),
     ("l3", ">i4"), ("v", ">f8")]
)  # fmt: skip
_PG_NULL_ROW = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("ts", ">i8"), ("l3", ">i4")]
)


def _pg_copy_rows(sid: Int64Array, ts: Int64Array, values: Float64Array) -> bytes:
    nan = np.isnan(values)
    parts = [_PG_HEADER]
    for mask, dtype in ((~nan, _PG_ROW), (nan, _PG_NULL_ROW)):
        count = int(mask.sum())
        if not count:
            continue
        rows = np.empty(count, dtype=dtype)
        rows["n"], rows["l1"], rows["l2"] = 3, 8, 8
        rows["sid"], rows["ts"] = sid[mask], ts[mask]
        if dtype is _PG_ROW:
            rows["l3"], rows["v"] = 8, values[mask]
        else:
            rows["l3"] = -1
        parts.append(rows.tobytes())
    parts.append(_PG_TRAILER)
    return b"".join(parts)


class PostgresFlavor(Flavor):
    """PostgreSQL: binary COPY into a temp table, then one INSERT ... ON CONFLICT."""

    name = "postgresql"

    def __init__(self, url: URL, tables: Tables) -> None:
        super().__init__(url, tables)
        self._staging = sa.Table(
            f"{tables.prefix}incoming",
            sa.MetaData(),
            sa.Column("series_id", sa.BigInteger()),
            sa.Column("ts", sa.BigInteger()),
            sa.Column("value", sa.Double()),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
        self._create_staging = self._copy = self._merge = ""

    def prepare(self, engine: sa.Engine) -> None:
        """Compile the staging table, the COPY and the merging upsert."""
        staging, samples = self._staging, self.tables.samples
        self._create_staging = self.compile(engine, CreateTable(staging, if_not_exists=True))
        quoted = engine.dialect.identifier_preparer.format_table(staging)
        self._copy = f"COPY {quoted} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
        stmt = postgresql.insert(samples).from_select(
            ["series_id", "ts", "value"],
            sa.select(staging.c.series_id, staging.c.ts, staging.c.value),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id", "ts"], set_={"value": stmt.excluded.value}
        )
        self._merge = self.compile(engine, stmt)

    def insert_samples(
        self, dbapi_conn: Any, sid: Int64Array, ts: Int64Array, values: Float64Array
    ) -> None:
        """COPY the batch in binary (built by numpy, no per-row Python), then merge it."""
        with dbapi_conn.cursor() as cur:
            cur.execute(self._create_staging)
            with cur.copy(self._copy) as copy:
                copy.write(_pg_copy_rows(sid, ts, values))
            cur.execute(self._merge)

    def bytes_used(self, conn: sa.Connection) -> int:
        """``pg_total_relation_size`` of the store's tables (with indexes and TOAST)."""
        total = 0
        for table in self.tables.metadata.sorted_tables:
            rel = sa.func.pg_total_relation_size(
                sa.cast(sa.literal(table.name), postgresql.REGCLASS)
            )
            total += int(conn.execute(sa.select(rel)).scalar_one())
        return total


class MySQLFlavor(Flavor):
    """MariaDB/MySQL: executemany of ``INSERT ... ON DUPLICATE KEY UPDATE``."""

    name = "mysql"

    def __init__(self, url: URL, tables: Tables) -> None:
        super().__init__(url, tables)
        self._upsert = ""

    def prepare(self, engine: sa.Engine) -> None:
        """Compile the upsert (PyMySQL rewrites executemany into multi-row INSERTs)."""
        stmt = mysql.insert(self.tables.samples).values(
            series_id=sa.bindparam("sid"), ts=sa.bindparam("ts"), value=sa.bindparam("v")
        )
        stmt = stmt.on_duplicate_key_update(value=stmt.inserted.value)
        self._upsert = self.compile(engine, stmt)

    def insert_samples(
        self, dbapi_conn: Any, sid: Int64Array, ts: Int64Array, values: Float64Array
    ) -> None:
        """DOUBLE rejects NaN (sent as NULL) and +-inf (refused before anything is written)."""
        if np.isinf(values).any():
            raise BackendError(
                f"MariaDB/MySQL cannot store +-inf ({self.tables.samples.name}); "
                "use SQLite or PostgreSQL for infinite values"
            )
        boxed: list[float | None] = values.tolist()
        for i in np.flatnonzero(np.isnan(values)).tolist():
            boxed[i] = None
        with dbapi_conn.cursor() as cur:
            cur.executemany(self._upsert, list(zip(sid.tolist(), ts.tolist(), boxed, strict=True)))

    def bytes_used(self, conn: sa.Connection) -> int:
        """``data_length + index_length`` from information_schema (InnoDB's estimate)."""
        t = sa.table("tables", sa.column("table_schema"), sa.column("table_name"),
                     sa.column("data_length"), sa.column("index_length"),
                     schema="information_schema")  # fmt: skip
        names = [table.name for table in self.tables.metadata.sorted_tables]
        stmt = sa.select(
            sa.func.coalesce(sa.func.sum(t.c.data_length + t.c.index_length), 0)
        ).where(t.c.table_schema == sa.func.database(), t.c.table_name.in_(names))
        return int(conn.execute(stmt).scalar_one())


def flavor_for(url: URL, tables: Tables, busy_timeout: float) -> Flavor:
    """The flavour serving ``url`` (already normalised)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SQLiteFlavor(url, tables, busy_timeout)
    if backend == "postgresql":
        return PostgresFlavor(url, tables)
    if backend in ("mysql", "mariadb"):
        return MySQLFlavor(url, tables)
    raise BackendError(f"unsupported SQL database {backend!r}")  # normalize_url screens this
