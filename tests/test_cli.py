"""The CLI as a user runs it: real processes, a real SQLite store in a temp directory."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk
from metricskit.model import Series, SeriesKey

CONFIG = """
collection:
  interval_seconds: 1
alerts:
  system:
    high_cpu:
      metric: system.cpu.usage_percent
      threshold: 80
      operator: gt
      duration_seconds: 0
      severity: warning
      channels: [log]
    critical_memory:
      metric: system.memory.usage_percent
      threshold: 95
      operator: gt
      duration_seconds: 0
      severity: critical
      channels: [log]
"""


def run(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "monitoring.yaml").write_text(CONFIG)
    return tmp_path


def seed_store(workdir: Path, cpu: float, memory: float) -> None:
    now = time.time_ns()
    store = mk.open_store(f"sqlite:///{workdir / 'config' / 'metrics.db'}")
    for name, value in (("system.cpu.usage_percent", cpu), ("system.memory.usage_percent", memory)):
        store.write([Series(SeriesKey.of(name), np.array([now]), np.array([value]))])
    store.close()


def start_background(workdir: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricskit", "start", *args],
        cwd=workdir,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pid_file = workdir / "config" / "monitoring.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "start did not write its pid file"
        time.sleep(0.1)
    return proc


@pytest.mark.parametrize(
    "args",
    [(), ("--interval", "30"), ("--duration", "3600")],
    ids=["start", "start-interval", "start-duration"],
)
def test_seed_start_lines_then_stop(workdir: Path, args: tuple[str, ...]) -> None:
    proc = start_background(workdir, *args)
    _wait_running(workdir, proc)
    status = run(workdir, "status", "--output", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["running"] is True and data["pid"] == proc.pid
    stopped = run(workdir, "stop")
    assert stopped.returncode == 0, stopped.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert not (workdir / "config" / "monitoring.pid").exists()
    assert (workdir / "config" / "monitoring.log").read_text().count("monitoring started") == 1
    assert run(workdir, "stop").returncode == 1  # nothing left to stop


def test_ctrl_c_stops_cleanly(workdir: Path) -> None:
    proc = start_background(workdir, "--interval", "1")
    _wait_collected(workdir, proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    store = mk.open_store(f"sqlite:///{workdir / 'config' / 'metrics.db'}")
    assert store.query("system.cpu.usage_percent"), "collected samples reached the store"
    store.close()


def test_seed_read_commands(workdir: Path) -> None:
    seed_store(workdir, cpu=50, memory=40)
    assert run(workdir, "status").returncode == 0
    metrics = run(workdir, "metrics")
    assert metrics.returncode == 0 and "system.cpu.usage_percent" in metrics.stdout
    # stdout is a pipe here, as in `metricskit metrics --output json | jq .system`:
    # it must hold the JSON document and nothing else
    piped = run(workdir, "metrics", "--output", "json")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["system"] == {
        "system.cpu.usage_percent": 50.0,
        "system.memory.usage_percent": 40.0,
    }
    assert run(workdir, "alerts", "list").returncode == 0
    assert run(workdir, "health").returncode == 0
    saved = run(workdir, "health", "--save")
    assert saved.returncode == 0
    assert list((workdir / "config").glob("health_report_*.json"))
    explicit = run(workdir, "health", "--save", str(workdir / "h.json"))
    assert json.loads((workdir / "h.json").read_text())["overall_status"] == "healthy"
    assert explicit.returncode == 0
    dashboard = run(workdir, "dashboard")
    assert dashboard.returncode == 0
    assert "system_overview" in json.loads(dashboard.stdout)["sections"]
    html = run(workdir, "dashboard", "--output", "html", "--file", "d.html")
    assert html.returncode == 0 and (workdir / "d.html").read_text().lstrip().startswith("<!")
    test = run(workdir, "alerts", "test")
    assert test.returncode == 0 and "log: ok" in test.stdout
    cleanup = run(workdir, "cleanup", "--days", "30")
    assert cleanup.returncode == 0 and "removed 0 samples" in cleanup.stdout


@pytest.mark.parametrize(
    ("cpu", "memory", "status", "code"),
    [(50, 40, "healthy", 0), (90, 40, "warning", 1), (90, 99, "critical", 2)],
)
def test_health_exit_codes(
    workdir: Path, cpu: float, memory: float, status: str, code: int
) -> None:
    seed_store(workdir, cpu, memory)
    from metricskit.service import MonitoringService

    with MonitoringService(workdir / "config" / "monitoring.yaml", write_logs=False) as service:
        service.engine.evaluate()
    result = run(workdir, "health", "--output", "json")
    assert result.returncode == code, result.stderr
    assert json.loads(result.stdout)["overall_status"] == status


def test_export_and_config_check(workdir: Path) -> None:
    seed_store(workdir, cpu=12, memory=34)
    csv = run(workdir, "export", "system.cpu.usage_percent", "--file", "cpu.csv")
    assert csv.returncode == 0, csv.stderr
    assert "12.0" in (workdir / "cpu.csv").read_text()
    pq = run(workdir, "export", "--format", "parquet", "--file", "all.parquet")
    assert pq.returncode == 0, pq.stderr
    import pandas as pd

    assert set(pd.read_parquet(workdir / "all.parquet")["name"]) >= {
        "system.cpu.usage_percent",
        "system.memory.usage_percent",
    }
    check = run(workdir, "config", "check")
    assert check.returncode == 0 and "2 alert rules" in check.stdout


@pytest.mark.parametrize(
    "text",
    [
        "alerts:\n  s:\n    r: {metric: a.b, threshold: 1, operator: bigger}\n",
        "storage: {type: nosuch}\n",
        "collection: [1\n",
        # (an unset ${VAR} in a channel only turns that channel off: test_rules_channels.py)
        "notifications:\n  slack: {webhook_url: 'not a url'}\n",
        "dashboard: {sections: {x: {metrics: ['bad name']}}}\n",
        "unknown_section: 1\n",
    ],
)
def test_bad_config_is_one_line_and_non_zero(workdir: Path, text: str) -> None:
    (workdir / "config" / "monitoring.yaml").write_text(text)
    for command in (["config", "check"], ["health"], ["status"]):
        result = run(workdir, *command)
        assert result.returncode == 3, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "monitoring.yaml:" in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_usage_error_and_unreachable_store(workdir: Path) -> None:
    bad = run(workdir, "cleanup")
    assert bad.returncode == 3 and "--days" in bad.stderr
    (workdir / "config" / "monitoring.yaml").write_text(
        "storage: {type: 'postgresql+psycopg://nobody@127.0.0.1:1/none'}\n"
    )
    down = run(workdir, "metrics")
    assert down.returncode == 3, down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    assert "Traceback" not in down.stderr
    env = {**os.environ, "METRICSKIT_CONFIG": str(workdir / "nope.yaml")}
    missing = subprocess.run(
        [sys.executable, "-m", "metricskit", "status"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 3 and "nope.yaml" in missing.stderr


def test_serve_metrics_dashboard_and_health(workdir: Path) -> None:
    import requests

    from tests.services import free_port

    seed_store(workdir, cpu=50, memory=40)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricskit", "serve", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                metrics = requests.get(f"{base}/metrics", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert metrics.status_code == 200
        assert "system_cpu_usage_percent 50.0" in metrics.text
        health = requests.get(f"{base}/api/health", timeout=30)
        assert health.status_code == 200
        assert health.json()["overall_status"] == "healthy"
        page = requests.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "<svg" in page.text
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        query = requests.get(f"{base}/api/v1/query", params={"query": "up"}, timeout=30)
        assert query.status_code == 200 and query.json()["status"] == "success"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # the startup line names everything served, the Prometheus API included, on one line
    [started] = [line for line in out.splitlines() if line.startswith("metricskit: serving")]
    assert "/metrics, /, /api/health" in started and "/api/v1/query" in started, started


def test_status_sees_monitoring_inside_an_application(workdir: Path) -> None:
    """A MonitoringService started by an app (no `metricskit start`, no pid file) shows as
    running through the status file it keeps fresh."""
    from metricskit.service import MonitoringService

    service = MonitoringService(workdir / "config" / "monitoring.yaml")
    service.start_monitoring(interval=1)
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "config" / "monitoring_status.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        result = run(workdir, "status", "--output", "json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["running"] is True and data["pid"] == os.getpid()
        # the application's service evaluates the rules, and status says so
        while f":{os.getpid()}" not in _evaluated_by(run(workdir, "status").stdout):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        service.close()
    assert not (workdir / "config" / "monitoring.pid").exists()
    assert json.loads(run(workdir, "status", "--output", "json").stdout)["running"] is False
    # a stopped service releases its lease: nobody evaluates
    assert _evaluated_by(run(workdir, "status").stdout).startswith("no process")


def _evaluated_by(status_table: str) -> str:
    (line,) = [x for x in status_table.splitlines() if x.startswith("rules evaluated by: ")]
    return line.removeprefix("rules evaluated by: ")


def test_grafana_export_writes_and_pushes(workdir: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pushed: list[dict] = []

    class GrafanaApi(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            pushed.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"url": "/d/abc/metricskit"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), GrafanaApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plain = run(workdir, "grafana", "export", "--file", "g.json")
        assert plain.returncode == 0 and "pushed" not in plain.stdout
        assert json.loads((workdir / "g.json").read_text())["panels"]
        config = workdir / "config" / "monitoring.yaml"
        config.write_text(
            config.read_text() + "integrations:\n  grafana:\n    enabled: true\n"
            f"    dashboard_url: http://127.0.0.1:{server.server_address[1]}\n"
        )
        result = run(workdir, "grafana", "export", "--file", "g.json")
        assert result.returncode == 0, result.stderr
        assert "pushed to http://127.0.0.1" in result.stdout
        assert pushed[0]["overwrite"] is True and pushed[0]["dashboard"]["title"] == "metricskit"
        skipped = run(workdir, "grafana", "export", "--no-push", "--file", "g.json")
        assert skipped.returncode == 0 and len(pushed) == 1
    finally:
        server.shutdown()
        server.server_close()


def _sleeper() -> subprocess.Popen[bytes]:
    """An unrelated live process that a wrong `stop` would kill."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def _run_isolated(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # its own session: a `kill(0)` by a broken `stop` could not reach pytest's group
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )


@pytest.mark.parametrize("content", ["unrelated", "exited", "0", "-1", "garbage"])
def test_stop_and_status_ignore_a_pid_file_nobody_holds(workdir: Path, content: str) -> None:
    sleeper = _sleeper()
    try:
        if content == "unrelated":
            content = str(sleeper.pid)
        elif content == "exited":
            gone = subprocess.Popen([sys.executable, "-c", "pass"])
            gone.wait()
            content = str(gone.pid)
        pid_file = workdir / "config" / "monitoring.pid"
        pid_file.write_text(content + "\n")
        stopped = _run_isolated(workdir, "stop")
        assert stopped.returncode == 1, stopped.stderr
        assert "not running" in stopped.stdout
        status = _run_isolated(workdir, "status", "--output", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["running"] is False
        assert sleeper.poll() is None, "stop signalled a process it does not own"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_start_takes_over_a_stale_pid_file(workdir: Path) -> None:
    sleeper = _sleeper()
    try:
        (workdir / "config" / "monitoring.pid").write_text(f"{sleeper.pid}\n")
        proc = start_background(workdir, "--quiet")
        _wait_running(workdir, proc)
        stopped = run(workdir, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert proc.wait(timeout=60) == 0
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def _wait_running(workdir: Path, proc: subprocess.Popen[str]) -> None:
    """Until `metricskit start` has written its status file (it is fully up)."""
    deadline = time.monotonic() + 60
    while not (workdir / "config" / "monitoring_status.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "start never wrote its status file"
        time.sleep(0.1)


def _wait_collected(workdir: Path, proc: subprocess.Popen[str]) -> None:
    """Until the status file of `metricskit start` shows a finished collection run."""
    status = workdir / "config" / "monitoring_status.json"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        if status.exists():
            sources = json.loads(status.read_text())["collector"].values()
            if any(stats["runs"] for stats in sources):
                return
        assert time.monotonic() < deadline, "start never finished a collection"
        time.sleep(0.1)


def test_running_service_refuses_a_second_start_and_a_tampered_pid(workdir: Path) -> None:
    proc = start_background(workdir, "--quiet")
    sleeper = _sleeper()
    try:
        _wait_running(workdir, proc)
        second = run(workdir, "start", "--quiet", "--duration", "1")
        assert second.returncode == 3
        assert f"already running as pid {proc.pid}" in second.stderr
        pid_file = workdir / "config" / "monitoring.pid"
        pid_file.write_text(f"{sleeper.pid}\n")  # same file (and lock), another pid
        refused = _run_isolated(workdir, "stop")
        assert refused.returncode == 3, refused.stdout
        assert "not that service" in refused.stderr
        assert sleeper.poll() is None and proc.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not (workdir / "config" / "monitoring.pid").exists()


def test_json_output_is_strict_json_with_null_for_nan(workdir: Path) -> None:
    now = time.time_ns()
    store = mk.open_store(f"sqlite:///{workdir / 'config' / 'metrics.db'}")
    for name, value in (("system.cpu.usage_percent", float("nan")), ("app.x.y", 1.5)):
        store.write([Series(SeriesKey.of(name), np.array([now]), np.array([value]))])
    with mk.Recorder(store) as rec:
        rec.record_request("/api", 0.25, 200, timestamp=now / 1e9)
    store.close()
    result = run(workdir, "metrics", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(result.stdout, parse_constant=refuse)
    assert data["system"]["system.cpu.usage_percent"] is None
    # The histogram totals the Recorder keeps are not metrics of their own.
    assert list(data["http"]) == ['http.request.duration_seconds{endpoint="/api",status="200"}']


def test_start_says_where_it_serves(workdir: Path) -> None:
    """With `integrations.prometheus.port: 0` the port is only known once bound: `start`
    prints it as `serve` does (it printed nothing, so /metrics could not be found)."""
    import requests

    config = workdir / "config" / "monitoring.yaml"
    config.write_text(CONFIG + "integrations: {prometheus: {enabled: true, port: 0}}\n")
    proc = start_background(workdir, "--quiet")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("metricskit: serving http://127.0.0.1:"), first
        metrics = requests.get(f"{first.split()[2]}/metrics", timeout=30)
        assert metrics.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
