"""Tables and key encoding of the SQL backend (see :mod:`metricskit.storage.sql`).

Four tables, all named with a configurable prefix (default ``metricskit_``):

- ``<prefix>series``: one row per series: ``id``, ``name``, ``tags`` (canonical JSON:
  sorted keys, no spaces, UTF-8), and ``key_hash``, the SHA-256 of ``name`` and ``tags``,
  which carries the uniqueness of (name, tags). A hash rather than a composite unique index
  because MariaDB cannot index a long ``TEXT`` column and PostgreSQL's B-tree rejects
  entries over ~2.7 kB, while tag values may be 1,024 characters each.
- ``<prefix>blocks``: most samples, in compressed blocks: one row per series per block of
  up to :data:`BLOCK_SAMPLES` samples, ``(id, series_id, start_ts, end_ts, n, data)``;
  ``data`` is :func:`metricskit.storage._chunk_codec.encode_block` of the block's sorted
  unique samples, ``start_ts``/``end_ts`` its first and last timestamp. The blocks of one
  series never overlap. A plain rowid table on SQLite so that a blob larger than a page
  fills whole overflow pages; an index on ``(series_id, end_ts)`` finds a range's blocks.
- ``<prefix>samples``: the open head: recent samples of small writes, one row each,
  ``(series_id, ts, value)`` with primary key ``(series_id, ts)`` (``WITHOUT ROWID`` on
  SQLite, clustered on InnoDB). Invariant: every head row of a series is newer than the
  series' newest block, so a sample lives in exactly one place. Once a series holds
  :data:`SEAL_ROWS` head rows, they are sealed into a block. ``ts`` is int64 ns, ``value``
  a double; NaN is stored as ``NULL`` (SQLite turns NaN into ``NULL`` anyway and MariaDB's
  DOUBLE rejects NaN) and read back as NaN.
- ``<prefix>meta``: ``schema_version`` and ``generation``, bumped by every delete that
  removes series rows so other processes know to drop cached series ids.

Schema versions: 1 (metricskit 0.1) had only the row-per-sample ``samples`` table; a
version-1 store is valid version 2 with every sample in the head, so opening one adds the
``blocks`` table, sets version 2 and seals the rows into blocks
(:meth:`metricskit.storage.sql.SQLBackend.compact`).
"""

from __future__ import annotations

import hashlib
import json
import re

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from metricskit.errors import BackendError
from metricskit.model import SeriesKey, Tags

__all__ = [
    "BLOCK_SAMPLES",
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "SEAL_ROWS",
    "Tables",
    "decode_key",
    "encode_tag_filter",
    "encode_tags",
    "key_hash",
]

SCHEMA_VERSION = 2
"""The layout this module creates; a store with a higher version is refused."""
BLOCK_SAMPLES = 4096
"""Samples per block at most: compresses within ~1% of larger blocks, decodes in ~0.1 ms."""
SEAL_ROWS = 512
"""Head rows of one series that trigger sealing them into a block."""
DEFAULT_PREFIX = "metricskit_"

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid alias
_TAGS_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class Tables:
    """The four tables of one store, under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        # The prefix becomes part of identifiers, which cannot be bound parameters, so it
        # must be a plain identifier.
        if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
            raise BackendError(
                f"invalid table prefix {prefix!r}: use letters, digits and '_' "
                "(at most 41 characters, not starting with a digit)"
            )
        self.prefix = prefix
        self.metadata = sa.MetaData()
        self.series = sa.Table(
            f"{prefix}series",
            self.metadata,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("name", sa.String(255), nullable=False, index=True),
            sa.Column("tags", _TAGS_TEXT, nullable=False),
            # Never reuse a deleted series' id: a stale id cached elsewhere must not alias.
            sqlite_autoincrement=True,
        )
        self.samples = sa.Table(
            f"{prefix}samples",
            self.metadata,
            sa.Column("series_id", _ID, primary_key=True, autoincrement=False),
            sa.Column("ts", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("value", sa.Double(), nullable=True),
            sqlite_with_rowid=False,
        )
        self.blocks = sa.Table(
            f"{prefix}blocks",
            self.metadata,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("series_id", _ID, nullable=False),
            sa.Column("start_ts", sa.BigInteger(), nullable=False),
            sa.Column("end_ts", sa.BigInteger(), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.Column("data", _BLOB, nullable=False),
            sa.Index(f"ix_{prefix}blocks_series_end", "series_id", "end_ts"),
        )
        self.meta = sa.Table(
            f"{prefix}meta",
            self.metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.BigInteger(), nullable=False),
        )


def encode_tags(tags: Tags) -> str:
    """The canonical JSON text of ``tags``: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(dict(tags.items_tuple), separators=(",", ":"), ensure_ascii=False)


def encode_tag_filter(key: str, value: str) -> str:
    """The exact fragment ``"key":"value"`` that :func:`encode_tags` writes for one tag.

    JSON escapes every quote inside a string, so this fragment can only match a real
    key/value pair, never text inside another value.
    """
    return f"{json.dumps(key, ensure_ascii=False)}:{json.dumps(value, ensure_ascii=False)}"


def key_hash(name: str, encoded_tags: str) -> str:
    """SHA-256 hex of a series' name and encoded tags: the unique identity of a series row."""
    return hashlib.sha256(f"{name}\x00{encoded_tags}".encode()).hexdigest()


def decode_key(name: str, encoded_tags: str) -> SeriesKey:
    """Rebuild the key of a stored series row."""
    items: dict[str, str] = json.loads(encoded_tags)
    # Stored rows were validated when written and encoded with sorted keys.
    return SeriesKey(name, Tags._trusted(tuple(items.items())))
