"""The root-level key snapshot of a ``parquet://`` store, so a new process need not list every day.

::

    root/
      _keys.json              {"version": 1, "token": T, "keys": [[name, tags, newest_day], ...]}
      _generation             T while the snapshot is current
      _dirty/day=2026-11-28   a partition some writer is changing (or was, when it crashed)
      _locks/_root.lock       flock'ed while the snapshot or the generation is replaced

The snapshot lists every series with the newest day partition holding it. It is *valid*
only while its token equals ``_generation``: every change to the files replaces the
generation under the root lock, either together with an updated snapshot (a flush adds
keys: the snapshot is updated in place, no listing) or without one (a deletion: readers
fall back to listing every partition until a writer rebuilds the snapshot once). A writer
marks its partition in ``_dirty/`` (durably) before it commits a file there and removes
the mark only after the snapshot that includes the file is in place, so a reader using a
valid snapshot also lists the few dirty partitions and never misses a committed file,
whether the writer is still running or died halfway. An unreadable snapshot is only
ignored; nothing in it is needed to read the data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from metricskit.errors import backend_error_from_oserror
from metricskit.model import SeriesKey
from metricskit.storage._parquet_format import key_of, tags_json
from metricskit.storage._parquet_layout import (
    Partition,
    day_of_name,
    fsync_dir,
    lock_file,
    set_generation,
)

__all__ = [
    "Snapshot",
    "clear_dirty",
    "dirty_days",
    "lock_root",
    "mark_dirty",
    "read_snapshot",
    "write_snapshot",
]

SNAPSHOT = "_keys.json"
DIRTY_DIR = "_dirty"
_VERSION = 1


@dataclass(frozen=True)
class Snapshot:
    """Every series of the store and the newest day holding it, as of ``token``."""

    token: str
    newest: Mapping[SeriesKey, int]


@contextmanager
def lock_root(root: str) -> Iterator[None]:
    """Hold the lock under which the snapshot and the generation token are replaced."""
    with lock_file(root, "_root"):
        yield


def read_snapshot(root: str, token: str | None, known: Snapshot | None = None) -> Snapshot | None:
    """The snapshot if it is current (``token``, the generation just read, is its token).

    ``known`` (a snapshot read earlier) is returned as is while its token is current,
    so a writer need not parse the whole key list again.
    """
    if token is None:
        return None
    if known is not None and known.token == token:
        return known
    try:
        with open(os.path.join(root, SNAPSHOT), encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("version") != _VERSION or doc.get("token") != token:
            return None
        newest = {key_of(name, tags): int(day) for name, tags, day in doc["keys"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, damaged or stale: listing the partitions says the same
    return Snapshot(token, newest)


def write_snapshot(root: str, newest: Mapping[SeriesKey, int], *, fsync: bool) -> str:
    """Replace the snapshot, then make its new token the generation; return the token.

    The caller holds the root lock.

    A reader between the two renames sees a token that is not the snapshot's and lists
    the partitions instead.
    """
    token = secrets.token_hex(16)
    rows = sorted([k.name, tags_json(k.tags), day] for k, day in newest.items())
    doc = {"version": _VERSION, "token": token, "keys": rows}
    path = os.path.join(root, SNAPSHOT)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"), ensure_ascii=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise backend_error_from_oserror(exc, f"writing {path}") from exc
    set_generation(root, token)
    if fsync:
        # Before a dirty mark goes: a power cut must not keep the mark's removal but lose
        # the snapshot that made it unnecessary.
        fsync_dir(root)
    return token


def mark_dirty(root: str, partition: Partition, *, fsync: bool) -> None:
    """Say that ``partition`` is about to change (durably, before any file lands there)."""
    directory = os.path.join(root, DIRTY_DIR)
    try:
        os.makedirs(directory, exist_ok=True)
        os.close(os.open(os.path.join(directory, partition.name), os.O_WRONLY | os.O_CREAT, 0o644))
        if fsync:
            fsync_dir(directory)
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"marking {partition.path}") from exc


def clear_dirty(root: str, partition: Partition) -> None:
    """Remove ``partition``'s mark: a current snapshot includes its files' keys."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, DIRTY_DIR, partition.name))


def dirty_days(root: str) -> list[int]:
    """The day numbers of the partitions marked dirty."""
    try:
        names = os.listdir(os.path.join(root, DIRTY_DIR))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"listing {root}/{DIRTY_DIR}") from exc
    return sorted(day for day in map(day_of_name, names) if day is not None)
