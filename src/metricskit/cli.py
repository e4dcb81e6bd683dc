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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import numpy as np
from rich.console import Console

from metricskit import _cli_render as render
from metricskit.errors import MetricsKitError
from metricskit.model import Selector

__all__ = ["cli", "main"]

EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 1, 2, 3
_HEALTH_EXIT = {"healthy": 0, "warning": EXIT_WARNING, "critical": EXIT_CRITICAL}
F = TypeVar("F", bound=Callable[..., Any])


def _console() -> Console:
    return Console(soft_wrap=True)


def _fail(message: str) -> NoReturn:
    one_line = " ".join(message.split())  # drivers add hint lines; scripts want one line
    click.echo(f"metricskit: error: {one_line}", err=True)
    sys.exit(EXIT_ERROR)


def config_option(f: F) -> F:
    """``--config FILE`` (default: ``$METRICSKIT_CONFIG``, ``config/monitoring.yaml``, ...)."""
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="monitoring.yaml (default: $METRICSKIT_CONFIG, config/monitoring.yaml, "
        "monitoring.yaml, else built-in defaults)",
    )(f)


def output_option(*choices: str) -> Callable[[F], F]:
    """``--output`` with the given formats, the first being the default."""
    return click.option(
        "--output", "-o", type=click.Choice(choices), default=choices[0], show_default=True
    )


def _service(config_path: str | None, *, write_logs: bool = False) -> Any:
    from metricskit.service import MonitoringService

    return MonitoringService(config_path, write_logs=write_logs)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="metricskit")
def cli() -> None:
    """metricskit: collect, store, alert on and report on metrics."""


# -- start / stop / status -----------------------------------------------------------------


def _pid_file(service: Any) -> Path:
    return Path(service.config.log_dir, service.config.service.pid_file)


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


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
            os.kill(candidate, 0)
            pid = candidate
        except (OSError, ValueError, TypeError):
            pid = None
    return {**written, "pid": pid} if pid is not None else None


def _latest_by_category(store: Any, lookback: str = "10m") -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    newest = max((ts for _k, ts, _v in store.latest()), default=None)
    if newest is None:
        return groups
    for key, _ts, value in store.latest(at=np.datetime64(newest, "ns"), lookback=lookback):
        if key.name.startswith("metricskit."):
            continue
        category = key.name.split(".", 1)[0]
        groups.setdefault(category, {})[str(key)] = value
    return groups


@cli.command()
@config_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds between collections (default: collection.interval_seconds)",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="stop after this many seconds",
)
@click.option("--quiet", is_flag=True, help="no live status screen")
def start(
    config_path: str | None, interval: float | None, duration: float | None, quiet: bool
) -> None:
    """Run collection, alerting and retention in the foreground until Ctrl-C."""
    service = _service(config_path, write_logs=True)
    pid_file = _pid_file(service)
    other = _running_pid(pid_file)
    if other is not None and other != os.getpid():
        service.close()
        _fail(f"already running as pid {other} (pid file {pid_file}); `metricskit stop` first")
    pid_file.write_text(str(os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = service.start_server() if service.config.integrations.prometheus.enabled else None
    deadline = None if duration is None else time.monotonic() + duration
    try:
        service.start_monitoring(interval)
        _run_until(service, stop, deadline, live=not quiet and sys.stdout.isatty())
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        service.close()
        pid_file.unlink(missing_ok=True)
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

        with Live(view(), console=_console(), refresh_per_second=1, screen=False) as screen:
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
    """Stop the running `metricskit start` (found through its pid file)."""
    from metricskit.config import load_config
    from metricskit.service import find_config

    config = load_config(config_path or find_config())
    pid_file = config.log_dir / config.service.pid_file
    pid = _running_pid(pid_file)
    if pid is None:
        click.echo("metricskit: not running")
        sys.exit(EXIT_WARNING)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running_pid(pid_file) == pid and time.monotonic() < deadline:
        time.sleep(0.2)
    if _running_pid(pid_file) == pid:
        _fail(f"pid {pid} did not stop within {timeout:g} s")
    click.echo(f"metricskit: stopped pid {pid}")


@cli.command()
@config_option
@output_option("table", "json")
def status(config_path: str | None, output: str) -> None:
    """Whether monitoring runs, the store's size and the active alerts."""
    service = _service(config_path)
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
        _print_json(data)
        return
    state = f"running (pid {pid})" if pid else "not running"
    storage = data["storage"]
    click.echo(
        f"monitoring: {state}\nstore: {data['store']}\n"
        f"samples: {storage['samples']:,}  series: {storage['series']:,}  "
        f"bytes: {storage['bytes']:,}"
    )
    _console().print(render.alerts_table(data["active_alerts"]))


@cli.command()
@config_option
@output_option("table", "json")
def metrics(config_path: str | None, output: str) -> None:
    """Current metrics (the newest value of each series), by category."""
    service = _service(config_path)
    try:
        groups = _latest_by_category(service.store)
    finally:
        service.close()
    if output == "json":
        _print_json(groups)
    else:
        _console().print(render.metrics_table(groups))


# -- alerts, health, dashboard ------------------------------------------------------------


@cli.group()
def alerts() -> None:
    """Active alerts and notification channels."""


@alerts.command("list")
@config_option
@output_option("table", "json")
def alerts_list(config_path: str | None, output: str) -> None:
    """Pending and firing alerts."""
    service = _service(config_path)
    try:
        active = service.reporter.active_alerts()
    finally:
        service.close()
    if output == "json":
        _print_json(active)
    else:
        _console().print(render.alerts_table(active))


@alerts.command("test")
@config_option
def alerts_test(config_path: str | None) -> None:
    """Send a test notification through every configured channel."""
    service = _service(config_path)
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
    service = _service(config_path)
    try:
        report = service.generate_health_report()
        if save is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(save) if save else service.config.log_dir / f"health_report_{stamp}.json"
            path.write_text(json.dumps(report, indent=2))
            click.echo(f"saved: {path}", err=True)
    finally:
        service.close()
    if output == "json":
        _print_json(report)
    else:
        _console().print(render.health_view(report))
    sys.exit(_HEALTH_EXIT.get(report["overall_status"], EXIT_ERROR))


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
    service = _service(config_path)
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
        Path(path).write_text(text)
        click.echo(f"wrote {path}")
    else:
        click.echo(text)


# -- maintenance ----------------------------------------------------------------------


@cli.command()
@config_option
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    required=True,
    help="delete samples older than this many days",
)
def cleanup(config_path: str | None, days: float) -> None:
    """Delete old samples, series by series (with a progress bar on a terminal)."""
    from rich.progress import Progress

    service = _service(config_path)
    try:
        cutoff = service.clock.now_ns() - round(days * 86_400 * 1e9)
        keys = service.store.series()
        removed = 0
        with Progress(console=Console(stderr=True), disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("cleaning up", total=len(keys))
            for key in keys:
                removed += service.store.backend.delete_before(cutoff, Selector.for_key(key))
                bar.advance(task)
        service.store.flush()
    finally:
        service.close()
    click.echo(f"removed {removed:,} samples older than {days:g} days from {len(keys):,} series")


@cli.group("config")
def config_group() -> None:
    """Configuration files."""


@config_group.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate a config file; prints one line per problem (there is at most one)."""
    from metricskit.config import load_config
    from metricskit.service import find_config

    path = config_path or find_config()
    cfg = load_config(path)
    click.echo(
        f"ok: {path or '(defaults)'}: {len(cfg.rules.alerts)} alert rules, "
        f"{len(cfg.rules.recording)} recording rules, store {cfg.store_url}"
    )


@cli.command()
@config_option
@click.argument("name", required=False)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="select by tag")
@click.option("--start", default=None, help="ISO time or epoch seconds")
@click.option("--end", default=None, help="ISO time or epoch seconds")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option("--file", "-f", "path", type=click.Path(dir_okay=False), required=True)
def export(
    config_path: str | None,
    name: str | None,
    tags: tuple[str, ...],
    start: str | None,
    end: str | None,
    fmt: str,
    path: str,
) -> None:
    """Export samples (one metric, or all) as CSV or Parquet, one row per sample."""
    selected = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--tag takes KEY=VALUE, got {item!r}")
        selected[key] = value
    service = _service(config_path)
    try:
        frame = service.store.frame(name, _time_arg(start), _time_arg(end), selected or None)
    finally:
        service.close()
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    click.echo(f"wrote {len(frame):,} samples to {path}")


def _time_arg(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


@cli.command()
@config_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="default: integrations.prometheus.port (8000)",
)
@click.option("--host", default=None, help="default: integrations.prometheus.host (127.0.0.1)")
def serve(config_path: str | None, port: int | None, host: str | None) -> None:
    """Serve /metrics, the dashboard at / and /api/health until Ctrl-C."""
    service = _service(config_path)
    server = service.start_server(host=host, port=port)
    click.echo(f"metricskit: serving {server.url} (/metrics, /, /api/health); Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        service.close()


@cli.group()
def grafana() -> None:
    """Grafana dashboards for the metrics metricskit exposes."""


@grafana.command("export")
@config_option
@click.option(
    "--file",
    "-f",
    "path",
    type=click.Path(dir_okay=False),
    default="grafana-dashboard.json",
    show_default=True,
)
def grafana_export(config_path: str | None, path: str) -> None:
    """Write a Grafana dashboard JSON built from the dashboard sections."""
    from metricskit.config import load_config
    from metricskit.grafana import dashboard as grafana_dashboard
    from metricskit.service import find_config

    cfg = load_config(config_path or find_config())
    model = grafana_dashboard(cfg.dashboard.metric_sections(), title=cfg.integrations.grafana.title)
    Path(path).write_text(json.dumps(model, indent=2))
    panels = sum(1 for p in model["panels"] if p["type"] != "row")
    click.echo(f"wrote {path}: {panels} panels")


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
        _fail(str(exc))
    sys.exit(0)
