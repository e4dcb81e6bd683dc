"""Finding and starting the real servers tests talk to, all on 127.0.0.1.

A test that cannot find its server skips with the reason; under
``METRICSKIT_REQUIRE_SERVICES=1`` (CI) it fails instead. The decision is
:func:`metricskit.testing.require.missing`, shared with the plugins' tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

from metricskit.testing.require import missing, require_module, required

POSTGRES_URL = os.environ.get(
    "METRICSKIT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("METRICSKIT_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


__all__ = [
    "MARIADB_URL",
    "POSTGRES_URL",
    "binary",
    "free_port",
    "missing",
    "port_open",
    "require_database",
    "require_module",
    "required",
    "running",
    "service_missing",
    "shared_dir",
]

service_missing = missing  # the name the server-backed tests know it by


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def binary(name: str) -> str:
    """The path of an installed program, or skip/fail naming the Debian package to install."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        missing(f"{name} is not installed (apt-get install it; see scripts/setup.sh)")
    return path


@contextmanager
def running(
    argv: Sequence[str], ready_url: str, *, log: Path, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv``, wait until ``ready_url`` answers 200, and stop it by pid afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if requests.get(ready_url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} not ready after {timeout}s:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def metricskit_serve(
    workdir: Path, *args: str, verify: str | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m metricskit serve`` in ``workdir`` on a free port; wait until it answers.

    Returns the process (its output piped) and its base URL; the caller stops it. With
    ``verify`` (the certificate of a server given one) the URL is ``https://``, checked
    against it.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricskit", "serve", "--port", str(port), *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"{'http' if verify is None else 'https'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            requests.get(f"{base}/metrics", timeout=5, verify=verify or True)
            return proc, base
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)


def require_database(url: str) -> str:
    """``url`` if its database server answers, else skip (or fail under CI)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any failure to connect means "not available"
        missing(f"cannot connect to {engine.url!r}: {exc}")
    finally:
        engine.dispose()
    return url


def shared_dir(checkout: Path | None = None) -> Path:
    """The project's ``shared/`` folder (reference dataset generator, design notes).

    ``$METRICSKIT_SHARED_DIR`` if set; else the first ``shared/`` holding
    ``bench/gen_dataset.py`` in ``checkout`` (this repository by default) or beside it or
    beside any folder above it: CI clones the repository into some folder with
    ``shared/`` copied beside the clone, worktrees sit a level deeper. Missing: skip, or
    fail under METRICSKIT_REQUIRE_SERVICES=1.
    """
    marker = Path("bench") / "gen_dataset.py"
    explicit = os.environ.get("METRICSKIT_SHARED_DIR")
    if explicit:
        if not (Path(explicit) / marker).is_file():
            missing(f"METRICSKIT_SHARED_DIR={explicit} has no {marker}")
        return Path(explicit)
    root = (checkout or Path(__file__).parents[1]).resolve()
    for folder in (root, *root.parents):
        if (folder / "shared" / marker).is_file():
            return folder / "shared"
    missing(f"no shared/{marker} in or above {root}: set METRICSKIT_SHARED_DIR to shared/")
