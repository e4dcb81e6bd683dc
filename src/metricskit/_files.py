"""Writing files without following symlinks planted at predictable names.

A fixed temporary name (``status.tmp``, ``page.html.tmp-1234``) in a directory another
user can write lets them plant a symlink there and have metricskit overwrite the file it
points to. Every file metricskit writes goes through here instead: new files are created
with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name, then renamed over the target
(a rename replaces a symlink at the target, it never writes through it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import TextIO

__all__ = ["atomic_write", "create_new", "open_append", "temp_beside"]

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_NEW_FILE |= getattr(os, "O_CLOEXEC", 0)


def open_append(path: str | os.PathLike[str]) -> TextIO:
    """``open(path, "a", encoding="utf-8")`` that refuses a symlink at ``path`` (a log
    file's fixed name is as easy to plant as a temp file's)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    return open(fd, "a", encoding="utf-8")


def create_new(path: str | os.PathLike[str], mode: int = 0o666) -> int:
    """Create ``path``, which must not exist (not even as a symlink); return a write fd.

    The permissions are ``mode`` less the umask, as ``open(path, "w")`` would give.
    """
    return os.open(path, _NEW_FILE, mode)


@contextlib.contextmanager
def temp_beside(path: str | os.PathLike[str]) -> Iterator[str]:
    """A new, empty file named ``.<name>.<random>.tmp`` beside ``path``; removed on exit
    unless the caller renamed it away.

    The leading dot hides it from globs (pyarrow, pandas, DuckDB); the random part makes
    the name unguessable, and creating it exclusively means nobody else's file or symlink
    is ever opened in its place.
    """
    directory, name = os.path.split(os.fspath(path))
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            os.close(create_new(tmp))
            break
        except FileExistsError:  # a 64-bit collision: draw another name
            continue
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half.

    ``str`` is written as UTF-8. ``fsync=True`` also makes the new content survive a crash.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with temp_beside(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
