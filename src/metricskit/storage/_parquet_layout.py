"""Where the ``parquet://`` backend keeps things: partition directories, file names, locks.

::

    root/
      day=2026-11-28/part-<seq:020d>-<level:02d>-<pid>-<random>.parquet
      day=2026-11-28/.part-...parquet.tmp       a write in progress (or a crash's leftover)
      _locks/day=2026-11-28.lock                 fcntl.flock'ed while the partition changes
      day=2026-11-28/_series.json                the partition's series and the files it lists
      _generation                                a random token, replaced after every change
      _keys.json, _dirty/, _locks/_root.lock     the key snapshot (see _parquet_snapshot)

A file's *sequence* orders it for last-write-wins: it is assigned while holding the
partition's lock, as ``max(time_ns(), newest sequence in the partition + 1)``, so it
grows across processes even if a clock steps back. A compacted file takes the highest
sequence of the files it merged (and a higher *level*, which breaks the tie), so it sorts
after every file it replaced and before every file written later.

``_generation`` lets a reader keep its listing of every partition's files: a writer
replaces the token (temp file + rename, under the root lock) after each commit,
compaction or deletion, so a
reader that finds the token it listed under reuses that listing instead of listing a
directory per day of history (one file read instead of hundreds of ``listdir``). A
writer that dies between its rename and the token leaves readers that already hold a
listing blind to that one file until the next change; new readers always list.

``_series.json`` in a partition names the series its files hold (and which files, of
which sizes, those are), rewritten under the partition lock after every change, so that
a new process learns every key from one small file per day instead of every file's
footer. It is only a hint: a reader uses it when its files and sizes are exactly the
partition's (a truncated file does not match), else the footers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import functools
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from metricskit.errors import backend_error_from_oserror

__all__ = [
    "DAY_NS",
    "DataFile",
    "FileSizes",
    "Partition",
    "bump_generation",
    "day_of_name",
    "file_sizes",
    "fsync_dir",
    "generation",
    "list_files",
    "list_partitions",
    "lock_file",
    "lock_partition",
    "new_file_name",
    "partition_of_day",
    "read_summary",
    "remove_summary",
    "set_generation",
    "write_summary",
]

DAY_NS = 86_400 * 1_000_000_000
_EPOCH = _dt.date(1970, 1, 1)
_PART_RE = re.compile(r"day=(\d{4}-\d{2}-\d{2})")
_FILE_RE = re.compile(r"part-(\d{20})-(\d{2})-\d+-[0-9a-f]+\.parquet")
LOCK_DIR = "_locks"
GENERATION = "_generation"
SUMMARY = "_series.json"


@dataclass(frozen=True, order=True)
class Partition:
    """One day directory; ``day`` counts days since 1970-01-01 (UTC)."""

    day: int
    path: str

    @property
    def name(self) -> str:
        """The directory name, ``day=YYYY-MM-DD``."""
        return os.path.basename(self.path)

    @property
    def start_ns(self) -> int:
        """The first nanosecond of the day."""
        return self.day * DAY_NS

    @property
    def end_ns(self) -> int:
        """The first nanosecond after the day."""
        return (self.day + 1) * DAY_NS


@dataclass(frozen=True, order=True)
class DataFile:
    """A committed data file; files sort oldest first (by sequence, then level)."""

    seq: int
    level: int
    path: str

    def size(self) -> int:
        """Bytes on disk (0 if it has just been removed)."""
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0


def partition_of_day(root: str, day: int) -> Partition:
    """The partition holding day number ``day``."""
    date = _EPOCH + _dt.timedelta(days=day)
    return Partition(day, os.path.join(root, f"day={date.isoformat()}"))


def list_partitions(root: str) -> list[Partition]:
    """The day partitions under ``root``, oldest first."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"listing {root}") from exc
    out = []
    for entry in entries:
        day = day_of_name(entry.name)
        if day is not None and entry.is_dir():
            out.append(Partition(day, entry.path))
    out.sort()
    return out


@functools.lru_cache(maxsize=65_536)
def day_of_name(name: str) -> int | None:
    """The day number a partition directory's name gives (``None``: not a partition)."""
    match = _PART_RE.fullmatch(name)
    if match is None:
        return None
    return (_dt.date.fromisoformat(match.group(1)) - _EPOCH).days


def list_files(partition: Partition) -> list[DataFile]:
    """The committed data files of a partition, oldest first; temp files are skipped."""
    try:
        names = os.listdir(partition.path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"listing {partition.path}") from exc
    out = []
    for name in names:
        match = _FILE_RE.fullmatch(name)
        if match:
            out.append(
                DataFile(
                    int(match.group(1)), int(match.group(2)), os.path.join(partition.path, name)
                )
            )
    out.sort()
    return out


def new_file_name(files: list[DataFile], level: int = 0, seq: int | None = None) -> str:
    """A file name whose sequence is newer than every one of ``files`` (or exactly ``seq``)."""
    if seq is None:
        seq = max(time.time_ns(), files[-1].seq + 1 if files else 0)
    return f"part-{seq:020d}-{level:02d}-{os.getpid()}-{secrets.token_hex(6)}.parquet"


def generation(root: str) -> str | None:
    """The current listing token of ``root`` (``None`` if no writer has set one yet)."""
    try:
        with open(os.path.join(root, GENERATION), encoding="ascii") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"reading {root}/{GENERATION}") from exc


def bump_generation(root: str) -> None:
    """Replace ``root``'s listing token by a new one: the files of some partition changed."""
    set_generation(root, secrets.token_hex(16))


def set_generation(root: str, token: str) -> None:
    """Make ``token`` ``root``'s listing token (callers hold the root lock)."""
    path = os.path.join(root, GENERATION)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(token)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise backend_error_from_oserror(exc, f"writing {path}") from exc


def write_summary(partition: Partition, files: list[DataFile], keys: list[list[str]]) -> None:
    """Record that ``files`` (the partition's files) hold the series ``keys`` ([name, tags])."""
    path = os.path.join(partition.path, SUMMARY)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    doc = {"files": [[os.path.basename(f.path), f.size()] for f in files], "series": keys}
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"), ensure_ascii=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise backend_error_from_oserror(exc, f"writing {path}") from exc


FileSizes = tuple[tuple[str, int], ...]


def file_sizes(files: list[DataFile]) -> FileSizes:
    """``(name, bytes)`` of each file: what a summary must match to be used."""
    return tuple((os.path.basename(f.path), f.size()) for f in files)


def read_summary(partition: Partition) -> tuple[FileSizes, list[list[str]]] | None:
    """``((name, bytes) per file, [[name, tags], ...])`` of a summary; ``None`` if unusable."""
    try:
        with open(os.path.join(partition.path, SUMMARY), encoding="utf-8") as f:
            doc = json.load(f)
        files = tuple((str(name), int(size)) for name, size in doc["files"])
        keys = doc["series"]
        if not isinstance(keys, list):
            return None
        return files, keys
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: the footers say the same, only slower


def remove_summary(partition: Partition) -> None:
    """Remove a partition's summary (before removing the emptied partition itself)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(partition.path, SUMMARY))


def fsync_dir(path: str) -> None:
    """Make the renames and creations in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def lock_partition(root: str, partition: Partition) -> Iterator[None]:
    """Hold the partition's exclusive lock, across processes and threads (per open file)."""
    with lock_file(root, partition.name):
        yield


@contextmanager
def lock_file(root: str, name: str) -> Iterator[None]:
    """Hold the exclusive lock ``_locks/<name>.lock``, across processes and threads."""
    lock_dir = os.path.join(root, LOCK_DIR)
    try:
        os.makedirs(lock_dir, exist_ok=True)
        fd = os.open(os.path.join(lock_dir, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise backend_error_from_oserror(exc, f"locking {root}/{LOCK_DIR}/{name}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
