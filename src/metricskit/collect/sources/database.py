"""Database checks (SQLAlchemy): connectivity, connection time, connections, query rate.

Each check produces, tagged ``database=<url without password>``:

- ``db.status``: 1 when a fresh connection ran ``SELECT 1``, else 0.
- ``db.connection_time_ms``: opening a new connection plus that ``SELECT 1`` round
  trip, in milliseconds. The engine uses ``NullPool`` on purpose: a pooled connection
  would measure nothing about connecting.
- ``db.connections.active``: PostgreSQL: client backends connected to this database
  (``pg_stat_activity``); MariaDB/MySQL: ``Threads_connected`` (server-wide). The
  check's own connection is included.
- ``db.queries.per_second``: the increase of a server counter between two runs divided
  by the seconds between them, so the first run has no value. PostgreSQL:
  ``xact_commit + xact_rollback`` of this database in ``pg_stat_database``
  (transactions; every statement outside an explicit transaction is one, and the
  statistics collector publishes them with up to about a second of delay);
  MariaDB/MySQL: ``Questions`` (statements sent by clients, server-wide). A counter
  that went down (server restart) starts a new baseline instead of a negative rate.

SQLite has no server to ask, so it reports only ``db.status`` and
``db.connection_time_ms``; :attr:`DatabaseCheck.unsupported` names the other two. Other
dialects report the same two.

A wrong password, stopped server or closed port gives ``db.status`` 0 and the reason in
:attr:`DatabaseCheck.last_result`, never an exception. The password is never logged,
tagged or put in a reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from metricskit._time import Clock, SystemClock
from metricskit.collect.sources.base import CheckResult, Sample, Source, log_transition

__all__ = ["DatabaseCheck"]

# one round trip for both figures: each statement costs about 1 ms of CPU here
_PG_STATS = sa.text(
    "SELECT (SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_type = 'client backend'),"
    " (SELECT xact_commit + xact_rollback FROM pg_stat_database"
    " WHERE datname = current_database())"
)
_MY_STATUS = sa.text("SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Questions')")
_SELECT_1 = sa.text("SELECT 1")


class DatabaseCheck(Source):
    """Connect to ``url`` and report the ``db.*`` metrics; see the module docstring.

    ``timeout`` (seconds) is passed to the driver as its connect timeout (and, where
    the driver has one, its read/statement timeout). ``engine_options`` go to
    :func:`sqlalchemy.create_engine`. ``clock`` stamps ``last_result.checked_at`` and
    times ``db.queries.per_second``.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        name: str | None = None,
        timeout: float = 5.0,
        engine_options: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url = make_url(url)
        self.clock: Clock = clock or SystemClock()
        self.timeout = timeout
        self.engine_options = dict(engine_options or {})
        # URL.set() ignores None, so drop the password through the NamedTuple API
        public = self.url._replace(password=None).render_as_string(hide_password=False)
        self.name = name or public
        self.tags = {"database": self.name}
        self.dialect = self.url.get_backend_name()
        self.unsupported: tuple[str, ...] = ()
        """The ``db.*`` metrics this database cannot report."""
        if self.dialect not in ("postgresql", "mysql", "mariadb"):
            self.unsupported = ("db.connections.active", "db.queries.per_second")
        self.last_result: CheckResult | None = None
        """The outcome of the latest run (``None`` before the first)."""
        self._engine: Engine | None = None
        self._prev_counter: tuple[float, float] | None = None

    def _connect_args(self) -> dict[str, Any]:
        driver = self.url.get_driver_name()
        secs = max(1, math.ceil(self.timeout))
        if self.dialect == "postgresql":
            ms = int(self.timeout * 1000)
            return {"connect_timeout": secs, "options": f"-c statement_timeout={ms}"}
        if self.dialect in ("mysql", "mariadb"):
            args: dict[str, Any] = {"connect_timeout": secs}
            if driver == "pymysql":
                args.update(read_timeout=secs, write_timeout=secs)
            return args
        if self.dialect == "sqlite":
            return {"timeout": self.timeout}
        return {}

    def _get_engine(self) -> Engine:
        if self._engine is None:
            options: dict[str, Any] = {"poolclass": NullPool, **self.engine_options}
            options["connect_args"] = {**self._connect_args(), **options.get("connect_args", {})}
            self._engine = sa.create_engine(self.url, **options)
        return self._engine

    def _reason(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        # the first line carries the cause; SQLAlchemy appends SQL and a help link
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        reason = f"{type(orig).__name__}: {text}" if text else type(orig).__name__
        if self.url.password:
            reason = reason.replace(str(self.url.password), "***")
        return reason

    def collect(self) -> list[Sample]:
        """Connect, measure, and return the ``db.*`` samples."""
        out: list[Sample] = []
        start = time.perf_counter()
        try:
            with self._get_engine().connect() as conn:
                conn.execute(_SELECT_1).scalar()
                elapsed = (time.perf_counter() - start) * 1000.0
                result = CheckResult(True, "ok", elapsed)
                try:
                    self._server_stats(conn, out)
                except sa.exc.SQLAlchemyError as exc:
                    result = result._replace(
                        reason=f"ok; statistics unavailable: {self._reason(exc)}"
                    )
        except Exception as exc:  # any driver failure is "down", with its reason
            result = CheckResult(False, self._reason(exc))
        result = result._replace(checked_at=self.clock.now())
        log_transition(f"database {self.name}", self.last_result, result)
        self.last_result = result
        out.insert(0, Sample("db.status", 1.0 if result.ok else 0.0, self.tags))
        if result.elapsed_ms is not None:
            out.insert(1, Sample("db.connection_time_ms", result.elapsed_ms, self.tags))
        return out

    def _server_stats(self, conn: Connection, out: list[Sample]) -> None:
        if self.dialect == "postgresql":
            active, counter = conn.execute(_PG_STATS).one()
        elif self.dialect in ("mysql", "mariadb"):
            rows = {str(k).lower(): v for k, v in conn.execute(_MY_STATUS).all()}
            active = rows.get("threads_connected")
            counter = rows.get("questions")
        else:
            return
        if active is not None:
            out.append(Sample("db.connections.active", float(active), self.tags))
        if counter is not None:
            rate = self._rate(float(counter), self.clock.now())
            if rate is not None:
                out.append(Sample("db.queries.per_second", rate, self.tags))

    def _rate(self, counter: float, now: float) -> float | None:
        prev, self._prev_counter = self._prev_counter, (counter, now)
        if prev is None or now <= prev[1] or counter < prev[0]:
            return None
        return (counter - prev[0]) / (now - prev[1])

    def close(self) -> None:
        """Dispose of the engine."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __repr__(self) -> str:
        return f"DatabaseCheck({self.name!r})"
