"""Start a throwaway VictoriaMetrics or Prometheus on 127.0.0.1, for tests and benchmarks.

Each runs the installed binary (Debian's ``victoria-metrics`` and ``prometheus``
packages: ``/usr/bin/victoria-metrics``, ``/usr/bin/prometheus``) on a free port with its
data in a directory the caller owns, and stops it by its pid on exit::

    with start_victoriametrics(tmp_path) as vm:
        store = metricskit.open_store(vm.url)

A missing binary raises :class:`ServerNotAvailable`; tests turn that into a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = [
    "Server",
    "ServerNotAvailable",
    "find_binary",
    "free_port",
    "start_prometheus",
    "start_victoriametrics",
]


class ServerNotAvailable(RuntimeError):
    """The server binary is not installed or did not come up."""


@dataclass(frozen=True)
class Server:
    """A running server: its store URL, HTTP base URL, data directory and process."""

    url: str
    http: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid


def find_binary(name: str, env_var: str) -> str:
    """The path of a server binary: ``$env_var``, else ``PATH``, else ``/usr/bin``."""
    candidate = os.environ.get(env_var) or shutil.which(name) or f"/usr/bin/{name}"
    if not os.access(candidate, os.X_OK):
        raise ServerNotAvailable(f"{name} is not installed (looked for {candidate}; set {env_var})")
    return candidate


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerNotAvailable(
                f"server exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise ServerNotAvailable(
        f"server not ready at {url} after {timeout}s: {log.read_text()[-2000:]}"
    )


@contextlib.contextmanager
def _run(
    args: list[str], ready_url: str, log: Path, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(ready_url, process, log, timeout)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def start_victoriametrics(data_dir: Path, *, timeout: float = 30.0) -> Iterator[Server]:
    """VictoriaMetrics single-node with ``-retentionPeriod=100y`` (old samples accepted)."""
    binary = find_binary("victoria-metrics", "METRICSKIT_VICTORIAMETRICS")
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"-storageDataPath={data_dir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-search.disableCache",  # tests read right after writing
    ]
    with _run(args, f"{http}/health", data_dir / "server.log", timeout) as process:
        yield Server(f"victoriametrics://127.0.0.1:{port}", http, data_dir, process)


_PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1h
storage:
  tsdb:
    out_of_order_time_window: {ooo}
"""


@contextlib.contextmanager
def start_prometheus(
    data_dir: Path, *, out_of_order_window: str = "100y", timeout: float = 60.0
) -> Iterator[Server]:
    """Prometheus with the remote-write receiver and the admin API, and no scrape jobs.

    ``out_of_order_window`` lets it take samples older than its newest (Prometheus
    refuses those otherwise).
    """
    binary = find_binary("prometheus", "METRICSKIT_PROMETHEUS")
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    config = data_dir / "prometheus.yml"
    config.write_text(_PROMETHEUS_CONFIG.format(ooo=out_of_order_window))
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--web.enable-admin-api",
        "--storage.tsdb.retention.time=100y",
    ]
    with _run(args, f"{http}/-/ready", data_dir / "server.log", timeout) as process:
        yield Server(f"promremote://127.0.0.1:{port}", http, data_dir, process)
