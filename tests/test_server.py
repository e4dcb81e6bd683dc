"""The HTTP server with real connections: bounded threads and connections, idle timeout,
clean shutdown, security headers, bind errors, and the app mounted in another app."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

import metricskit as mk
from metricskit.model import Series, SeriesKey
from metricskit.server.app import MetricsServer, Response, ServerBindError
from tests.services import free_port, metricskit_serve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store() -> Iterator[mk.Store]:
    s = mk.open_store("memory://")
    key = SeriesKey.of("system.cpu.usage_percent")
    s.write([Series(key, np.array([time.time_ns()]), np.array([42.0]))])
    yield s
    s.close()


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed while we looked
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def _serve(workdir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    (workdir / "monitoring.yaml").write_text("storage: {type: memory}\n")
    return metricskit_serve(workdir, *args)


def test_1000_idle_connections_keep_threads_bounded_and_sigterm_exits_0(tmp_path: Path) -> None:
    """One thread per connection made 1,000 idle clients cost 1,006 threads, and SIGTERM
    after heavy use could abort the process."""
    proc, base = _serve(tmp_path, "--idle-timeout", "600", "--max-connections", "1100")
    port = int(base.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        threads_before = int(_proc_status(proc.pid)["Threads"])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(1000)]
        deadline = time.monotonic() + 60
        while _open_sockets(proc.pid) < 1000:  # the server has accepted them all
            assert time.monotonic() < deadline, _open_sockets(proc.pid)
            time.sleep(0.1)
        threads = int(_proc_status(proc.pid)["Threads"])
        assert threads <= threads_before + 10, (threads_before, threads)
        assert requests.get(f"{base}/metrics", timeout=30).status_code == 200
        with requests.Session() as session:  # heavy use: keep-alive and fresh connections
            for _ in range(100):
                assert session.get(f"{base}/metrics", timeout=30).status_code == 200
        for _ in range(200):
            requests.get(f"{base}/", timeout=30)
        assert int(_proc_status(proc.pid)["Threads"]) <= threads_before + 50
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        for conn in idle:
            conn.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP response (headers and Content-Length body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += conn.recv(65536)
    return data


def test_idle_and_half_sent_connections_are_closed(store: mk.Store) -> None:
    with MetricsServer(store, port=0, idle_timeout=1) as server:
        conns = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(5)]
        conns[0].sendall(b"GET /metr")  # half a request line, then nothing
        conns[1].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(conns[1]).startswith(b"HTTP/1.1 200")
        conns[1].sendall(b"GET /metr")  # a kept-alive connection stalling mid request line
        for conn in conns:
            assert conn.recv(1024) == b"", "the server closes it"
            conn.close()
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 200


def test_connections_beyond_the_limit_get_503(store: mk.Store) -> None:
    with MetricsServer(store, port=0, max_connections=4, idle_timeout=600) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 503
        finally:
            for conn in idle:
                conn.close()
        deadline = time.monotonic() + 30
        while requests.get(f"{server.url}/metrics", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the closed connections never freed their slots"
            time.sleep(0.1)


@pytest.mark.parametrize("auth", [None, "tok"])
def test_security_headers_on_every_response(store: mk.Store, auth: str | None) -> None:
    with MetricsServer(store, port=0, bearer_token=auth) as server:
        for path in ("/metrics", "/nope"):
            response = requests.get(f"{server.url}{path}", timeout=10)
            assert response.status_code == (401 if auth else 200 if path == "/metrics" else 404)
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        if auth:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_warns_when_serving_beyond_loopback_without_auth(
    store: mk.Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "metricskit.server.app"):
        MetricsServer(store, host="0.0.0.0", port=0, bearer_token="tok").stop()
        MetricsServer(store, host="127.0.0.1", port=0).stop()
        assert "beyond loopback" not in caplog.text
        MetricsServer(store, host="0.0.0.0", port=0).stop()
    assert "beyond loopback without auth" in caplog.text


def test_a_failing_route_answers_500_and_the_server_goes_on(store: mk.Store) -> None:
    def broken(headers: object) -> Response:
        raise RuntimeError("boom")

    with MetricsServer(store, port=0, routes={"/broken": broken}) as server:
        assert requests.get(f"{server.url}/broken", timeout=10).status_code == 500
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 200


def test_taken_port_is_one_line_naming_it_and_the_setting(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    (tmp_path / "monitoring.yaml").write_text(
        "storage: {type: memory}\n"
        f"integrations: {{prometheus: {{enabled: true, port: {port}}}}}\n"
    )
    try:
        with pytest.raises(ServerBindError, match=f"127.0.0.1:{port}"):
            MetricsServer(mk.open_store("memory://"), port=port)
        for command in (["serve"], ["start", "--quiet", "--duration", "30"]):
            result = subprocess.run(
                [sys.executable, "-m", "metricskit", *command],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 3, (command, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert f"127.0.0.1:{port}" in lines[0] and "address already in use" in lines[0]
            assert "integrations.prometheus.port" in lines[0]
            assert not (tmp_path / "monitoring.pid").exists()
    finally:
        taken.close()


def test_operations_mount_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs/operations.md example: the app mounted in a Starlette app, over real HTTP."""
    import uvicorn

    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("### Mounting in your own application", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "monitoring.yaml").write_text("storage: {type: memory}\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "operations_example"}
    exec(compile(block.group(1), "docs/operations.md mount example", "exec"), namespace)
    app, monitoring = namespace["app"], namespace["monitoring"]
    monitoring.record_custom_metric("business.user_signups", 5.0)  # type: ignore[attr-defined]
    monitoring.recorder.flush()  # type: ignore[attr-defined]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, lifespan="off"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        metrics = requests.get(f"{base}/monitoring/metrics", timeout=30)
        assert metrics.status_code == 200 and "business_user_signups" in metrics.text
        assert requests.get(f"{base}/monitoring/api/health", timeout=30).json()["overall_status"]
        assert requests.get(f"{base}/monitoring/", timeout=30).text.lstrip().startswith("<!")
        assert requests.get(f"{base}/", timeout=30).text == "my app"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        monitoring.close()  # type: ignore[attr-defined]
