"""The pid file of ``metricskit start``: a lock held for the life of the service.

A pid file alone cannot tell a running service from a stale file whose pid now belongs
to some other process (or was edited to ``0`` or ``-1``, which ``kill`` treats as a
process group and every process). So the running service holds an exclusive ``flock`` on
its pid file: the kernel drops it when the process dies, however it dies. ``stop`` and
``status`` believe the file only while that lock is held, and ``stop`` signals only a pid
above 1 whose start time matches the one the service recorded beside its pid.

The file's first line is the pid, as other tools expect; the second is the process'
start time (seconds since the epoch, as psutil reports it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
from pathlib import Path

import psutil

from metricskit.errors import InvalidArgumentError, MetricsKitError, StateError

__all__ = ["AlreadyRunningError", "PidLock", "UnverifiedPidError", "holder", "terminate"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class AlreadyRunningError(StateError):
    """Another live ``metricskit start`` holds the pid file's lock."""

    def __init__(self, pid: int | None, path: Path) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"already running as {who} (pid file {path}); `metricskit stop` first")
        self.pid = pid


class UnverifiedPidError(MetricsKitError, ProcessLookupError):
    """The pid file is locked, but the pid it names is not the process that locked it."""


def _started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def _read(fd: int) -> tuple[int | None, float | None]:
    text = os.pread(fd, 256, 0).decode("ascii", "replace").split()
    try:
        pid = int(text[0])
    except (IndexError, ValueError):
        return None, None
    try:
        return pid, float(text[1])
    except (IndexError, ValueError):
        return pid, None


class PidLock:
    """Hold ``path`` as this process' pid file: ``with PidLock(path): ...``.

    Raises :class:`AlreadyRunningError` when a live process holds it. A stale file (its
    process gone) is taken over. The file is removed on exit.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> PidLock:
        """Take the lock and write this process' pid and start time."""
        # O_NOFOLLOW: a symlink planted at the pid file's name is refused, never written through
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _ = _read(fd)
            os.close(fd)
            raise AlreadyRunningError(pid, self.path) from None
        pid = os.getpid()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n{_started(pid)!r}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the file and drop the lock."""
        if self._fd is None:
            return
        # unlink first: a `start` racing us then creates a fresh file instead of locking
        # this one just before it disappears
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> PidLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def holder(path: str | os.PathLike[str]) -> tuple[int, float] | None:
    """The pid and start time of the live process holding ``path``'s lock; None when
    nobody holds it.

    Raises :class:`UnverifiedPidError` when the lock is held but the file names a pid
    that is not the process that wrote it (edited, or below 2).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:  # missing, or a symlink: no service of ours wrote that
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, started = _read(fd)
        else:
            return None  # nobody holds it: the file is stale
    finally:
        os.close(fd)
    if pid is None or pid <= 1 or started is None or _started(pid) != started:
        raise UnverifiedPidError(
            f"pid file {path} is locked by a running service but names pid {pid}, "
            "which is not that service; not signalling it"
        )
    return pid, started


def terminate(pid: int, started: float, timeout: float) -> bool:
    """Send SIGTERM to ``pid`` if it is still the process that started at ``started``,
    and wait up to ``timeout`` seconds; True once it exited (or was already gone)."""
    if pid <= 1:
        raise InvalidArgumentError(f"refusing to signal pid {pid}")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): the pid itself
        if _started(pid) != started:
            return True
        os.kill(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            return False
        return True
    try:
        # the pidfd pins the process: checked once opened, the signal cannot reach a pid
        # recycled after the check
        if _started(pid) != started:
            return True
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)
