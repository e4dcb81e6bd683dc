"""The SQL backend's read statements, compiled once for the raw DBAPI cursor.

Each read of one series is one statement — a ``UNION ALL`` of the blocks overlapping the
range and the head rows in it — so it sees one snapshot even under PostgreSQL's READ
COMMITTED while another process seals head rows into blocks. Rows come as
``(series_id, kind, ts, value, data)``; see :func:`metricskit.storage._sql_blocks.assemble`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from metricskit.model import Selector, Series, SeriesKey
from metricskit.storage._sql_blocks import BLOCK_KIND, CHUNK, ROW_KIND, assemble
from metricskit.storage._sql_schema import Tables, encode_tag_filter, encode_tags, key_hash

__all__ = ["Compiled", "ReadStatements", "execute", "read_many"]

Compiled = tuple[str, tuple[str, ...], dict[str, Any]]
"""SQL text, its parameter names in positional order, and their default values."""

_KIND: sa.ColumnClause[Any] = sa.literal_column("kind")
_TS: sa.ColumnClause[Any] = sa.literal_column("ts")
_ESCAPE = "/"


def _like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern escaped with ``/``."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def execute(cursor: Any, compiled: Compiled, **params: Any) -> list[Any]:
    """Run ``compiled`` on a raw DBAPI cursor and fetch every row."""
    sql, names, defaults = compiled
    values = {**defaults, **params}
    cursor.execute(sql, tuple(values[name] for name in names))
    return list(cursor.fetchall())


class ReadStatements:
    """Statements of one store (tables and dialect), compiled once."""

    def __init__(self, tables: Tables, dialect: sa.Dialect) -> None:
        self.tables = tables
        self.dialect = dialect
        t = tables
        by_hash = (
            sa.select(t.series.c.id).where(t.series.c.key_hash == sa.bindparam("h"))
        ).scalar_subquery()
        blocks, head = self.blocks_and_head(lambda table: table.c.series_id == by_hash)
        self.read = self.compile(sa.union_all(blocks, head).order_by(_KIND, _TS))
        """One series by key hash ``h`` in ``[start, end)``."""
        by_id: sa.BindParameter[int] = sa.bindparam("sid")
        self.read_id = self.compile(
            sa.union_all(*self.blocks_and_head(lambda table: table.c.series_id == by_id)).order_by(
                _KIND, _TS
            )
        )
        """One series by id ``sid`` in ``[start, end)``."""
        # last(): the head's newest row in range, else the newest block overlapping it.
        newest_row = head.order_by(t.samples.c.ts.desc()).limit(1).subquery()
        newest_block = blocks.order_by(t.blocks.c.end_ts.desc()).limit(1).subquery()
        self.last = self.compile(sa.union_all(sa.select(newest_row), sa.select(newest_block)))
        """The newest head row and the newest block of series ``h`` in ``[start, end)``."""
        self._match: dict[tuple[bool, bool, int], Compiled] = {}

    def compile(self, stmt: sa.ClauseElement) -> Compiled:
        """SQL text for the raw DBAPI cursor, its parameter names in order, their defaults."""
        compiled = stmt.compile(dialect=self.dialect)
        names: list[str] = getattr(compiled, "positiontup", None) or []
        return str(compiled), tuple(names), dict(compiled.params)

    def blocks_and_head(
        self, which: Callable[[sa.Table], sa.ColumnElement[bool]]
    ) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """``(series_id, kind, ts, value, data)`` of blocks and head rows in ``[:start, :end)``."""
        b, h = self.tables.blocks, self.tables.samples
        start: sa.BindParameter[int] = sa.bindparam("start")
        end: sa.BindParameter[int] = sa.bindparam("end")
        blocks = sa.select(
            b.c.series_id,
            sa.literal_column(str(BLOCK_KIND)).label("kind"),
            b.c.start_ts.label("ts"),
            sa.cast(sa.null(), h.c.value.type).label("value"),
            b.c.data,
        ).where(which(b), b.c.end_ts >= start, b.c.start_ts < end)
        head = sa.select(
            h.c.series_id,
            sa.literal_column(str(ROW_KIND)).label("kind"),
            h.c.ts,
            h.c.value,
            sa.cast(sa.null(), b.c.data.type).label("data"),
        ).where(which(h), h.c.ts >= start, h.c.ts < end)
        return blocks, head

    def many(self, ids: list[int]) -> sa.CompoundSelect[Any]:
        """Blocks and head rows of the series ``ids`` (bind ``start`` and ``end``)."""
        blocks, head = self.blocks_and_head(lambda table: table.c.series_id.in_(ids))
        return sa.union_all(blocks, head).order_by(sa.text("1"), _KIND, _TS)

    def match(self, selector: Selector) -> tuple[Compiled, dict[str, Any]]:
        """``(statement, parameters)`` listing ``(id, name, tags)`` of candidate series.

        The statement depends only on the selector's shape (name or not, exact or not, how
        many tags), so it is compiled once per shape.
        """
        tags = selector.tags.items_tuple
        shape = (selector.name is not None, selector.exact, 0 if selector.exact else len(tags))
        compiled = self._match.get(shape)
        if compiled is None:
            compiled = self._match[shape] = self._compile_match(*shape)
        params: dict[str, Any] = {"name": selector.name}
        if selector.exact:
            params["tags"] = encode_tags(selector.tags)
        else:
            for i, (tag, value) in enumerate(tags):
                params[f"t{i}"] = f"%{_like_escape(encode_tag_filter(tag, value))}%"
        return compiled, params

    def _compile_match(self, by_name: bool, exact: bool, n_tags: int) -> Compiled:
        series = self.tables.series
        stmt = sa.select(series.c.id, series.c.name, series.c.tags)
        if by_name:
            stmt = stmt.where(series.c.name == sa.bindparam("name"))
        if exact:
            stmt = stmt.where(series.c.tags == sa.bindparam("tags"))
        for i in range(n_tags):
            stmt = stmt.where(series.c.tags.like(sa.bindparam(f"t{i}"), escape=_ESCAPE))
        return self.compile(stmt)


@functools.lru_cache(maxsize=1 << 16)
def _hash(key: SeriesKey) -> str:
    # a query engine reads the same keys query after query; hashing is pure
    return key_hash(key.name, encode_tags(key.tags))


def read_many(
    conn: sa.Connection, reads: ReadStatements, keys: Sequence[SeriesKey], start: int, end: int
) -> list[Series]:
    """Each key's samples in ``[start, end)``, empty or not, inside the caller's transaction.

    Per 500 keys, one statement finds the series ids by key hash and one reads every
    block and head row of them in the range, so each series is read once.
    """
    series = reads.tables.series
    rows_of: dict[SeriesKey, list[Any]] = {}
    for first in range(0, len(keys), CHUNK):
        by_hash = {_hash(key): key for key in keys[first : first + CHUNK]}
        found = sa.select(series.c.id, series.c.key_hash).where(
            series.c.key_hash.in_(list(by_hash))
        )
        ids = {int(sid): by_hash[digest] for sid, digest in conn.execute(found)}
        if not ids:
            continue
        for row in conn.execute(reads.many(list(ids)), {"start": start, "end": end}):
            rows_of.setdefault(ids[row[0]], []).append(row)
    out = []
    for key in keys:
        ts, values = assemble(rows_of.get(key, []), start, end)
        out.append(Series(key, ts, values) if ts.size else Series.empty(key))
    return out
