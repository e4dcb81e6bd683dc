"""The ``metricskit`` command (also ``python -m metricskit``).

The seed's commands: ``start``, ``stop``, ``status``, ``metrics``, ``alerts list``,
``alerts test``, ``health``, ``dashboard``, ``cleanup``; plus ``config check``,
``export``, ``serve`` and ``grafana export``. Tables for people, ``--output json`` for
machines. Exit codes: 0 success (``health``: healthy); ``health`` 1 when warning, 2 when
critical (the Nagios convention); ``alerts test`` 1 when a channel failed; 3 when the
command could not run (bad usage, bad config, unreachable store), with one line on
stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import psutil

from metricskit._files import atomic_write
from metricskit._pidlock import (
    AlreadyRunningError,
    PidLock,
    UnverifiedPidError,
    holder,
    terminate,
)
from metricskit.catalog import histogram_of
from metricskit.cli import _render as render
from metricskit.cli._common import (
    EXIT_ERROR,
    EXIT_WARNING,
    HEALTH_EXIT,
    config_option,
    console,
    fail,
    json_text,
    open_service,
    output_option,
    print_json,
    serving_line,
    tls_files,
    tls_option,
)
from metricskit.cli._tools import TOOLS
from metricskit.errors import MetricsKitError
from metricskit.report.types import AlertView

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="metricskit")
def cli() -> None:
    """metricskit: collect, store, alert on and report on metrics."""


# -- start / stop / status -----------------------------------------------------------------


def _pid_file(service: Any) -> Path:
    return Path(service.config.log_dir, service.config.service.pid_file)


def _running_pid(pid_file: Path) -> int | None:
    """The pid of the `metricskit start` holding ``pid_file``'s lock, else None."""
    try:
        found = holder(pid_file)
    except UnverifiedPidError:
        return None
    return found[0] if found is not None else None


_STATUS_FRESH_S = 10.0


def _live_status(service: Any) -> dict[str, Any] | None:
    """The status a running monitor last wrote, if one runs: `metricskit start` (found by
    its pid file) or a MonitoringService inside an application (found by a status file
    written in the last few seconds by a live process)."""
    status_file = Path(service.config.log_dir, service.config.service.status_file)
    written: dict[str, Any] = {}
    fresh = False
    try:
        written = json.loads(status_file.read_text())
        fresh = time.time() - status_file.stat().st_mtime < _STATUS_FRESH_S
    except (OSError, ValueError):
        pass
    pid = _running_pid(_pid_file(service))
    if pid is None and fresh:
        try:
            candidate = int(written.get("pid", -1))
            # 0 and -1 are process groups to kill(), never a service
            pid = candidate if candidate > 1 and psutil.pid_exists(candidate) else None
        except (ValueError, TypeError):
            pid = None
    return {**written, "pid": pid} if pid is not None else None


def _latest_by_category(store: Any, lookback: str = "10m") -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    newest = max((ts for _k, ts, _v in store.latest()), default=None)
    if newest is None:
        return groups
    for key, _ts, value in store.latest(at=np.datetime64(newest, "ns"), lookback=lookback):
        if key.name.startswith("metricskit.") or histogram_of(key.name) is not None:
            continue  # self-monitoring, and the histogram totals the Recorder keeps
        category = key.name.split(".", 1)[0]
        groups.setdefault(category, {})[str(key)] = value
    return groups


@cli.command()
@config_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds between collections of every group, overriding collection.interval_seconds "
    "and collection.intervals (default: as configured)",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="stop after this many seconds",
)
@click.option("--quiet", is_flag=True, help="no live status screen")
@tls_option
def start(
    config_path: str | None,
    interval: float | None,
    duration: float | None,
    quiet: bool,
    tls_certfile: str | None,
    tls_keyfile: str | None,
) -> None:
    """Run collection, alerting and retention in the foreground until Ctrl-C (and serve
    /metrics and the API when integrations.prometheus.enabled, over HTTPS with a
    certificate)."""
    tls = tls_files(tls_certfile, tls_keyfile)
    service = open_service(config_path, write_logs=True)
    if tls and not service.config.integrations.prometheus.enabled:
        service.close()
        fail("--tls-certfile needs integrations.prometheus.enabled: true (nothing is served)")
    lock = PidLock(_pid_file(service))
    try:
        lock.acquire()
    except (AlreadyRunningError, OSError) as exc:
        service.close()
        fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = None
    deadline = None if duration is None else time.monotonic() + duration
    try:
        if service.config.integrations.prometheus.enabled:
            server = service.start_server(**tls)
            click.echo(serving_line(server.url))
        service.start_monitoring(interval)
        _run_until(service, stop, deadline, live=not quiet and sys.stdout.isatty())
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        service.close()
        lock.release()
    click.echo("metricskit: stopped")


def _run_until(service: Any, stop: threading.Event, deadline: float | None, live: bool) -> None:
    def view() -> Any:
        return render.status_view(
            service.get_monitoring_status(), _latest_by_category(service.store)
        )

    def done() -> bool:
        return stop.wait(1.0) or (deadline is not None and time.monotonic() >= deadline)

    if live:
        from rich.live import Live

        with Live(view(), console=console(), refresh_per_second=1, screen=False) as screen:
            while not done():
                screen.update(view())
        return
    click.echo(f"metricskit: monitoring started (pid {os.getpid()}, store {service.store})")
    while not done():
        pass


@cli.command()
@config_option
@click.option("--timeout", type=float, default=30.0, show_default=True)
def stop(config_path: str | None, timeout: float) -> None:
    """Stop the running `metricskit start` (found through its locked pid file)."""
    from metricskit.config import load_config
    from metricskit.service import find_config

    config = load_config(config_path or find_config())
    pid_file = config.log_dir / config.service.pid_file
    try:
        found = holder(pid_file)
    except UnverifiedPidError as exc:
        fail(str(exc))
    if found is None:
        click.echo("metricskit: not running")
        sys.exit(EXIT_WARNING)
    pid, started = found
    if not terminate(pid, started, timeout):
        fail(f"pid {pid} did not stop within {timeout:g} s")
    click.echo(f"metricskit: stopped pid {pid}")


@cli.command()
@config_option
@output_option("table", "json")
def status(config_path: str | None, output: str) -> None:
    """Whether monitoring runs, the store's size and the active alerts."""
    service = open_service(config_path)
    try:
        data = service.get_monitoring_status()
        live = _live_status(service)
        pid = live["pid"] if live else None
        if live:
            data = {**live, "storage": data["storage"], "active_alerts": data["active_alerts"]}
        data.update(running=pid is not None, pid=pid)
    finally:
        service.close()
    if output == "json":
        print_json(data)
        return
    state = f"running (pid {pid})" if pid else "not running"
    storage = data["storage"]
    click.echo(
        f"monitoring: {state}\nstore: {data['store']}\n"
        f"samples: {storage['samples']:,}  series: {storage['series']:,}  "
        f"bytes: {storage['bytes']:,}"
    )
    leader = (data.get("evaluator") or {}).get("leader")
    # a second monitor on the store stands by (docs/rules.md): say who sends the alerts
    click.echo(f"rules evaluated by: {leader or 'no process (no fresh heartbeat)'}")
    console().print(render.alerts_table([AlertView.from_dict(a) for a in data["active_alerts"]]))


@cli.command()
@config_option
@output_option("table", "json")
def metrics(config_path: str | None, output: str) -> None:
    """Current metrics (the newest value of each series), by category."""
    service = open_service(config_path)
    try:
        groups = _latest_by_category(service.store)
    finally:
        service.close()
    if output == "json":
        print_json(groups)
    else:
        console().print(render.metrics_table(groups))


# -- alerts, health, dashboard ------------------------------------------------------------


@cli.group()
def alerts() -> None:
    """Active alerts and notification channels."""


@alerts.command("list")
@config_option
@output_option("table", "json")
def alerts_list(config_path: str | None, output: str) -> None:
    """Pending and firing alerts."""
    service = open_service(config_path)
    try:
        active = service.reporter.active_alerts()
    finally:
        service.close()
    if output == "json":
        print_json([a.to_dict() for a in active])
    else:
        console().print(render.alerts_table(active))


@alerts.command("test")
@config_option
def alerts_test(config_path: str | None) -> None:
    """Send a test notification through every configured channel."""
    service = open_service(config_path)
    try:
        results = service.engine.test_channels()
    finally:
        service.close()
    for channel, result in results.items():
        click.echo(f"{channel}: {result}")
    if any(result != "ok" for result in results.values()):
        sys.exit(EXIT_WARNING)


@cli.command()
@config_option
@output_option("table", "json")
@click.option(
    "--save",
    "save",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PATH]",
    help="also write the JSON report (default name in log_dir)",
)
def health(config_path: str | None, output: str, save: str | None) -> None:
    """The health report; exits 0 healthy, 1 warning, 2 critical."""
    service = open_service(config_path)
    try:
        report = service.health_report()
        if save is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(save) if save else service.config.log_dir / f"health_report_{stamp}.json"
            atomic_write(path, json_text(report.to_dict()))
            click.echo(f"saved: {path}", err=True)
    finally:
        service.close()
    if output == "json":
        print_json(report.to_dict())
    else:
        console().print(render.health_view(report))
    sys.exit(HEALTH_EXIT.get(report.overall_status, EXIT_ERROR))


@cli.command()
@config_option
@output_option("json", "html")
@click.option(
    "--file",
    "-f",
    "path",
    type=click.Path(dir_okay=False),
    default=None,
    help="write here (html default: dashboard.html)",
)
@click.option("--window", default=None, help="time covered, e.g. 1h (default: dashboard.window)")
def dashboard(config_path: str | None, output: str, path: str | None, window: str | None) -> None:
    """Dashboard data as JSON, or the self-contained HTML dashboard."""
    service = open_service(config_path)
    try:
        if output == "html":
            target = Path(path or "dashboard.html")
            service.reporter.to_html(target, window=window)
            click.echo(f"wrote {target}")
            return
        text = service.reporter.dashboard_json(window)
    finally:
        service.close()
    if path:
        atomic_write(path, text)
        click.echo(f"wrote {path}")
    else:
        click.echo(text)


# -- maintenance ----------------------------------------------------------------------


for _command in TOOLS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line on stderr and exit code 3."""
    try:
        cli.main(args=argv, prog_name="metricskit", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"metricskit: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except (MetricsKitError, OSError) as exc:
        fail(str(exc))
    sys.exit(0)
