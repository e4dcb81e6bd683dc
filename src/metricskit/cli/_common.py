"""What every ``metricskit`` command shares: options, exit codes, errors, output."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

__all__ = [
    "EXIT_CRITICAL",
    "EXIT_ERROR",
    "EXIT_WARNING",
    "HEALTH_EXIT",
    "config_option",
    "console",
    "fail",
    "json_text",
    "open_service",
    "output_option",
    "print_json",
    "serving_line",
    "tls_files",
    "tls_option",
]

EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 1, 2, 3
HEALTH_EXIT = {"healthy": 0, "warning": EXIT_WARNING, "critical": EXIT_CRITICAL}
"""``metricskit health``'s exit code per overall status (the Nagios convention)."""
F = TypeVar("F", bound=Callable[..., Any])


def console() -> Console:
    """A console for tables (rich), wrapping long lines instead of cropping them."""
    return Console(soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print one error line on stderr and exit 3."""
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


def tls_option(f: F) -> F:
    """``--tls-certfile`` and ``--tls-keyfile``: serve HTTPS with this certificate and key
    (over ``integrations.prometheus.tls_certfile``/``tls_keyfile``)."""
    f = click.option(
        "--tls-keyfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="the certificate's PEM private key (default: integrations.prometheus.tls_keyfile)",
    )(f)
    return click.option(
        "--tls-certfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="serve HTTPS with this PEM certificate, given with --tls-keyfile "
        "(default: integrations.prometheus.tls_certfile)",
    )(f)


def tls_files(certfile: str | None, keyfile: str | None) -> dict[str, str]:
    """The ``start_server`` arguments for ``--tls-certfile``/``--tls-keyfile``: both or none."""
    if certfile is None or keyfile is None:
        if certfile is not keyfile:
            fail("give --tls-certfile and --tls-keyfile together")
        return {}
    return {"tls_certfile": certfile, "tls_keyfile": keyfile}


def serving_line(url: str) -> str:
    """The line ``serve`` and ``start`` print once listening: where, and what is served
    (with ``port: 0`` the URL is the only place the port shows)."""
    return (
        f"metricskit: serving {url} (/metrics, /, /api/health, Prometheus API "
        "/api/v1/query, /api/v1/query_range, ...)"
    )


def output_option(*choices: str) -> Callable[[F], F]:
    """``--output`` with the given formats, the first being the default."""
    return click.option(
        "--output", "-o", type=click.Choice(choices), default=choices[0], show_default=True
    )


def open_service(config_path: str | None, *, write_logs: bool = False) -> Any:
    """A MonitoringService for the config (imported late: it pulls in everything)."""
    from metricskit.service import MonitoringService

    return MonitoringService(config_path, write_logs=write_logs)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def json_text(data: Any) -> str:
    """``data`` as strict JSON: NaN and +-inf (which JSON cannot spell) become ``null``."""
    return json.dumps(_finite(data), indent=2, default=str, allow_nan=False)


def print_json(data: Any) -> None:
    """JSON for machines, on stdout (NaN and +-inf as ``null``)."""
    click.echo(json_text(data))
