"""Finding and starting the real servers tests talk to, all on 127.0.0.1.

A test that cannot find its server skips with the reason; under
``METRICSKIT_REQUIRE_SERVICES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

POSTGRES_URL = os.environ.get(
    "METRICSKIT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("METRICSKIT_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")


def services_required() -> bool:
    """True when a missing server must fail the test rather than skip it."""
    return os.environ.get("METRICSKIT_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip (or, under METRICSKIT_REQUIRE_SERVICES=1, fail) because a server is missing."""
    if services_required():
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


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
        service_missing(f"{name} is not installed (apt-get install it; see scripts/setup.sh)")
    assert path is not None
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


def require_database(url: str) -> str:
    """``url`` if its database server answers, else skip (or fail under CI)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any failure to connect means "not available"
        service_missing(f"cannot connect to {engine.url!r}: {exc}")
    finally:
        engine.dispose()
    return url
