"""The ``metricskit`` maintenance and integration commands: cleanup, migrate, config check,
export, serve and grafana export (registered on the main group by
:mod:`metricskit.cli.commands`)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from metricskit._files import atomic_write
from metricskit.cli._common import (
    config_option,
    fail,
    open_service,
    serving_line,
    tls_files,
    tls_option,
)
from metricskit.model import Selector
from metricskit.server.app import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS

__all__ = ["TOOLS"]


@click.command()
@config_option
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    required=True,
    help="delete samples older than this many days",
)
def cleanup(config_path: str | None, days: float) -> None:
    """Delete old samples, series by series (with a progress bar on a terminal)."""
    service = open_service(config_path)
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


@click.command()
@config_option
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    default=None,
    help="the store to migrate (default: the config's storage)",
)
def migrate(config_path: str | None, store_url: str | None) -> None:
    """Upgrade a store written by an older metricskit to the current layout.

    Opening a store already upgrades its schema; this also seals rows an interrupted
    upgrade left behind (``compact``) and says which schema version it found and left.
    """
    from metricskit.store import open_store

    if store_url is None:
        from metricskit.config import load_config
        from metricskit.service import find_config

        store_url = load_config(config_path or find_config()).store_url
    store = open_store(store_url)
    try:
        backend: Any = store.backend
        if not hasattr(backend, "schema_version"):
            click.echo(f"{backend!r}: no schema version, nothing to migrate")
            return
        before = backend.schema_version_on_open
        if hasattr(backend, "compact"):
            backend.compact()
        click.echo(f"schema version before: {'none (new store)' if before is None else before}")
        click.echo(f"schema version after: {backend.schema_version}")
    finally:
        store.close()


@click.group("config")
def config_group() -> None:
    """Configuration files."""


@config_group.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate a config file: `ok` and a warning line per non-fatal problem, or the error."""
    from metricskit._secrets import redact_store_url
    from metricskit.config import load_config
    from metricskit.service import find_config

    path = config_path or find_config()
    cfg = load_config(path)
    click.echo(
        f"ok: {path or '(defaults)'}: {len(cfg.rules.alerts)} alert rules, "
        f"{len(cfg.rules.recording)} recording rules, store {redact_store_url(cfg.store_url)}"
    )
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command()
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
            fail(f"--tag takes KEY=VALUE, got {item!r}")
        selected[key] = value
    service = open_service(config_path)
    try:
        frame = service.store.frame(name, _time_arg(start), _time_arg(end), selected or None)
    finally:
        service.close()
    data = frame.to_csv(index=False) if fmt == "csv" else frame.to_parquet(index=False)
    atomic_write(path, data)
    click.echo(f"wrote {len(frame):,} samples to {path}")


def _time_arg(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


@click.command()
@config_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="default: integrations.prometheus.port (8000)",
)
@click.option("--host", default=None, help="default: integrations.prometheus.host (127.0.0.1)")
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="open connections served at once; beyond them requests get 503",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_IDLE_TIMEOUT_S,
    show_default=True,
    help="close a connection that sends nothing for this many seconds",
)
@tls_option
def serve(
    config_path: str | None,
    port: int | None,
    host: str | None,
    max_connections: int,
    idle_timeout: float,
    tls_certfile: str | None,
    tls_keyfile: str | None,
) -> None:
    """Serve /metrics, the dashboard at /, /api/health and Prometheus' HTTP API until Ctrl-C
    (HTTPS with a certificate)."""
    tls = tls_files(tls_certfile, tls_keyfile)
    service = open_service(config_path)
    try:
        server = service.start_server(
            host=host,
            port=port,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            **tls,
        )
    except BaseException:
        service.close()
        raise
    click.echo(f"{serving_line(server.url)}; Ctrl-C stops")
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


@click.group()
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
@click.option(
    "--push/--no-push",
    default=None,
    help="also create/update it in Grafana (default: integrations.grafana.enabled)",
)
def grafana_export(config_path: str | None, path: str, push: bool | None) -> None:
    """Write a Grafana dashboard JSON built from the dashboard sections."""
    from metricskit.config import load_config
    from metricskit.report import grafana as grafana_api
    from metricskit.service import find_config

    cfg = load_config(config_path or find_config())
    settings = cfg.integrations.grafana
    model = grafana_api.dashboard(
        cfg.dashboard.metric_sections(),
        title=settings.title,
        section_titles=cfg.dashboard.section_titles(),
    )
    atomic_write(path, json.dumps(model, indent=2))
    panels = sum(1 for p in model["panels"] if p["type"] != "row")
    click.echo(f"wrote {path}: {panels} panels")
    if push if push is not None else settings.enabled:
        if not settings.dashboard_url:
            fail("integrations.grafana.dashboard_url is not set; nowhere to push")
        url = grafana_api.push(model, settings.dashboard_url, api_key=settings.api_key)
        click.echo(f"pushed to {url}")


TOOLS = (cleanup, migrate, config_group, export, serve, grafana)
"""The commands this module adds to ``metricskit``."""
