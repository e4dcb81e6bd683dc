"""MonitoringService: the seed's facade, wiring Recorder, Collector, RuleEngine and Reporter.

::

    from metricskit.service import MonitoringService
    monitoring = MonitoringService(config="config/monitoring.yaml")
    monitoring.start_monitoring(interval=60)
    monitoring.record_custom_metric("business.user_signups", 5.0, tags={"source": "web"})
    monitoring.record_request("/api/chat", 0.245, 200)
    monitoring.get_monitoring_status()["active_alerts"]
    monitoring.generate_health_report()["overall_status"]

``MonitoringService()`` without a config reads ``$METRICSKIT_CONFIG``, else
``config/monitoring.yaml`` or ``monitoring.yaml`` in the working directory when present,
else the defaults. ``from metricskit.service import monitoring_service`` gives one shared
instance, created on first use (importing the module creates nothing).

The service writes ``monitoring.log`` (its own log) and, through the log channel,
``monitoring_alerts.log`` in ``service.log_dir``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metricskit._files import atomic_write, open_append
from metricskit._scheduler import Scheduler
from metricskit._time import NS_PER_S, Clock, SystemClock
from metricskit.alerting.engine import RuleEngine
from metricskit.alerting.notify import Notifier
from metricskit.alerting.performance_rules import default_rules, with_defaults
from metricskit.collect.collector import Collector
from metricskit.collect.sources.config import GroupIntervals
from metricskit.config import MonitoringConfig, load_config
from metricskit.errors import InvalidArgumentError, StateError
from metricskit.integrations._timing import in_health_check_request
from metricskit.recorder import REQUEST_METRIC, Recorder
from metricskit.report.reporter import Reporter, ReportSettings
from metricskit.server.app import MetricsServer, Response, ServerBindError, create_app
from metricskit.store import Store, open_store

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from metricskit.report.types import HealthReport

__all__ = ["CONFIG_CANDIDATES", "MonitoringService", "find_config"]

log = logging.getLogger("metricskit.service")

CONFIG_CANDIDATES = ("config/monitoring.yaml", "monitoring.yaml")
"""Where :func:`find_config` looks, in order, after ``$METRICSKIT_CONFIG``."""
_CLEANUP_EVERY_S = 3600.0
_STATUS_EVERY_S = 1.0


def find_config() -> str | None:
    """The config file to use when none is named (see the module docstring)."""
    named = os.environ.get("METRICSKIT_CONFIG")
    if named:
        return named
    for candidate in CONFIG_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


class _NoFollowFileHandler(logging.FileHandler):
    """A FileHandler that will not append through a symlink planted at its name."""

    def _open(self) -> Any:
        return open_append(self.baseFilename)


def _log_handler(path: Path, level: int) -> logging.Handler:
    handler = _NoFollowFileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


class MonitoringService:
    """One object owning a store, a recorder, a collector, a rule engine and a reporter."""

    def __init__(
        self,
        config: str | os.PathLike[str] | MonitoringConfig | None = None,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        write_logs: bool = True,
    ) -> None:
        if not isinstance(config, MonitoringConfig):
            config = load_config(config if config is not None else find_config())
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store = store or open_store(
            config.store_url, max_records_per_series=config.storage.max_records_per_metric
        )
        self._log_handler: logging.Handler | None = None
        if write_logs:
            self._start_log()
        self.recorder = Recorder(self.store, clock=self.clock, host=config.service.host_tag)
        self.notifier = Notifier.from_config(
            config.notifications,
            log_dir=config.log_dir,
            unavailable=config.unavailable_channels,
            clock=self.clock,
        )
        for warning in config.warnings:
            log.warning("%s", warning)
        thresholds = config.performance.performance_thresholds()
        # the seed's performance thresholds are expression rules like any (built-in rules
        # the config may redefine), routed to every configured channel
        builtin = default_rules(
            thresholds, tuple(self.notifier.channels), config.performance.window
        )
        self.engine = RuleEngine(
            with_defaults(config.rules, builtin),
            self.store,
            notifier=self.notifier,
            clock=self.clock,
        )
        # what start_monitoring() will run them at, unless given another interval
        interval = config.service.evaluation_interval_seconds or config.interval_seconds
        self.engine.evaluation_interval_seconds = interval
        self.collector: Collector | None = None
        self.reporter = Reporter(
            self.store,
            engine=self.engine,
            settings=ReportSettings(
                sections=config.dashboard.metric_sections(),
                section_titles=config.dashboard.section_titles(),
                performance_window=config.performance.window,
                thresholds=thresholds,
                dashboard_window=config.dashboard.window,
            ),
            clock=self.clock,
        )
        self._track_error_details = config.performance.error_tracking.track_error_details
        self.started_at: float | None = None
        self.interval: float | None = None
        self.scheduler: Scheduler | None = None
        """While running: the one clock-driven scheduler behind collection, rule
        evaluation, retention and the status file (``scheduler.tick()`` runs what is due)."""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MonitoringService({self.store!r}, {state})"

    def _start_log(self) -> None:
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        verbose = self.config.debug.enabled or self.config.debug.verbose_logging
        level = logging.DEBUG if verbose else logging.INFO
        self._log_handler = _log_handler(self.config.log_dir / "monitoring.log", level)
        package_logger = logging.getLogger("metricskit")
        package_logger.addHandler(self._log_handler)
        if package_logger.level == logging.NOTSET or package_logger.level > level:
            package_logger.setLevel(level)

    # -- recording (the seed's names) -----------------------------------------------------

    def record_custom_metric(
        self, name: str, value: float, tags: dict[str, str] | None = None
    ) -> None:
        """Record one sample of a custom metric, e.g. ``business.user_signups``."""
        self.recorder.record(name, value, tags)

    def record_request(
        self, endpoint: str, response_time: float, status_code: int, method: str | None = None
    ) -> None:
        """Record a request: ``response_time`` in seconds, the HTTP ``status_code``.

        ``performance.error_tracking.track_error_details`` (the default) keeps the exact
        code in the ``status`` tag; off, only its class (``"2xx"``, ``"5xx"``), which keeps
        the number of series small when an app answers with many different codes. Error
        rates work either way. A request from metricskit's own health checks (inside a
        Flask request carrying ``X-Metricskit-Health-Check``) is not recorded.
        """
        if in_health_check_request():  # the seed's hooks, called for our own health check
            return
        if self._track_error_details:
            self.recorder.record_request(endpoint, response_time, status_code, method=method)
            return
        tags = {"endpoint": endpoint, "status": f"{int(status_code) // 100}xx"}
        if method is not None:
            tags["method"] = method
        self.recorder.record(REQUEST_METRIC, response_time, tags)

    # -- running --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start_monitoring` and :meth:`stop_monitoring`."""
        return self.started_at is not None

    def _build_collector(self, interval: float | None) -> Collector:
        collection = self.config.collection
        if interval is not None:
            # an explicit interval is for every group, as `metricskit start --interval` says
            collection = collection.model_copy(
                update={"interval_seconds": interval, "intervals": GroupIntervals()}
            )
        return Collector.from_config(
            self.recorder,
            collection,
            app_url=self.config.health_checks.app_url,
            database_url=self.config.health_checks.database_url,
            store=self.store,
            clock=self.clock,
        )

    def start_monitoring(self, interval: float | None = None) -> None:
        """Collect, evaluate alert rules and apply retention in background threads.

        ``interval`` (seconds) overrides ``collection.interval_seconds`` and every
        per-group ``collection.intervals`` entry; rules are evaluated at
        ``service.evaluation_interval_seconds`` or the same interval.
        """
        if self.running:
            raise StateError("monitoring is already running; stop_monitoring() first")
        every = float(interval) if interval is not None else self.config.interval_seconds
        if every <= 0:
            raise InvalidArgumentError(f"interval must be > 0 seconds, got {interval!r}")
        self.collector = self._build_collector(None if interval is None else every)
        self.reporter.collector = self.collector
        self.interval = every
        self.started_at = self.clock.now()
        self.scheduler = self._build_scheduler(self.collector, every)
        self.scheduler.start()
        log.info("monitoring started: interval %ss, store %s", every, self.store)

    def _build_scheduler(self, collector: Collector, every: float) -> Scheduler:
        sched = Scheduler(self.clock)

        def collect(now_ns: int) -> int | None:
            collector.run_pending()  # the sources run in their own threads
            due = collector.next_due_ns()
            # a source added while running is due at once; look for one every second
            return now_ns + NS_PER_S if due is None else min(due, now_ns + NS_PER_S)

        sched.every("collect", every, timed=collect)
        evaluate_every = self.config.service.evaluation_interval_seconds or every
        sched.every("evaluate", evaluate_every, self.engine.evaluate)
        self.engine.evaluation_interval_seconds = evaluate_every
        days = self.config.retention_days
        if days is not None:
            sched.every("retention", _CLEANUP_EVERY_S, lambda: self._retention(days))
        sched.every("status", _STATUS_EVERY_S, self._write_status_file)
        if self.config.debug.performance_profiling:
            sched.every("profile", every, self._log_profile, first_after_s=every)
        return sched

    def _retention(self, days: float) -> None:
        removed = self.cleanup(days)
        log.info("retention: removed %d samples older than %g days", removed, days)

    def _log_profile(self) -> None:
        """``debug.performance_profiling``: how long each source and the rules took."""
        if self.collector is not None:
            for name, stats in self.collector.stats().items():
                took = stats.get("last_duration_s")
                if took is not None:
                    log.info(
                        "profile: source %s took %.1f ms (%d samples)",
                        name,
                        took * 1e3,
                        stats.get("last_samples", 0),
                    )
        if self.engine.last_evaluation_seconds is not None:
            log.info(
                "profile: %d alert rules evaluated in %.1f ms",
                len(self.engine.rules),
                self.engine.last_evaluation_seconds * 1e3,
            )
        log.info(
            "profile: recorder pending %d, dropped %d", self.recorder.pending, self.recorder.dropped
        )

    def _write_status_file(self) -> None:
        path = self.config.log_dir / self.config.service.status_file
        atomic_write(path, json.dumps(self.get_monitoring_status(), default=str))

    def stop_monitoring(self) -> None:
        """Stop collection and evaluation, and flush what was recorded."""
        if not self.running:
            return
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.collector is not None:
            self.collector.stop()
        self.engine.release()  # a process standing by takes over at once, not after the lease
        self.recorder.flush()
        self.started_at = None
        # a stopped monitor must not look alive to `metricskit status`
        (self.config.log_dir / self.config.service.status_file).unlink(missing_ok=True)
        log.info("monitoring stopped")

    def close(self) -> None:
        """Stop, flush and release everything (the store too)."""
        self.stop_monitoring()
        if self.collector is not None:
            self.collector.close()
        self.recorder.close()
        self.notifier.close()
        self.store.close()
        if self._log_handler is not None:
            logging.getLogger("metricskit").removeHandler(self._log_handler)
            self._log_handler.close()

    def __enter__(self) -> MonitoringService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _server_options(self) -> dict[str, Any]:
        settings = self.config.integrations.prometheus
        auth = settings.basic_auth
        return {
            "path": settings.path,
            "basic_auth": (auth.username, auth.password) if auth is not None else None,
            "bearer_token": settings.bearer_token,
            "routes": {"/": self._dashboard_route, "/api/health": self._health_route},
            "alerts": self.engine,
        }

    def start_server(
        self, host: str | None = None, port: int | None = None, **limits: Any
    ) -> MetricsServer:
        """Serve ``/metrics``, the HTML dashboard at ``/`` and ``/api/health`` (JSON).

        Host, port, path, auth and TLS come from ``integrations.prometheus`` unless given;
        ``limits`` are :class:`~metricskit.server.app.MetricsServer`'s ``max_connections``,
        ``idle_timeout``, ``tls_certfile`` and ``tls_keyfile``. ``/api/health`` answers 503
        when the overall status is critical, else 200. A taken port raises
        :class:`~metricskit.server.app.ServerBindError` naming it and the setting to change.
        """
        settings = self.config.integrations.prometheus
        host = host or settings.host
        port = settings.port if port is None else port
        if settings.tls_certfile is not None and settings.tls_keyfile is not None:
            tls = {
                "tls_certfile": self.config.resolve(settings.tls_certfile),
                "tls_keyfile": self.config.resolve(settings.tls_keyfile),
            }
            limits = {**tls, **limits}  # a certificate given here wins over the config's
        try:
            server = MetricsServer(
                self.store, host=host, port=port, **self._server_options(), **limits
            )
        except ServerBindError as exc:
            raise ServerBindError(
                f"{exc}; choose another port with integrations.prometheus.port "
                "(`metricskit serve --port`), or stop what listens there"
            ) from exc
        return server.start()

    def asgi_app(self) -> Starlette:
        """The same routes as :meth:`start_server` as an ASGI app to mount in your own
        Starlette or FastAPI application (auth from ``integrations.prometheus``)."""
        return create_app(self.store, **self._server_options())

    def _dashboard_route(self, headers: Mapping[str, str]) -> Response:
        html = self.reporter.to_html()
        return Response(html.encode(), "text/html; charset=utf-8")

    def _health_route(self, headers: Mapping[str, str]) -> Response:
        report = self.health_report()
        status = 503 if report.overall_status == "critical" else 200
        return Response(json.dumps(report.to_dict()).encode(), "application/json", status)

    # -- reading --------------------------------------------------------------------------

    def get_monitoring_status(self) -> dict[str, Any]:
        """Running state, store size, active alerts, which process evaluates the alert
        rules (``evaluator``: see :meth:`RuleEngine.evaluating`) and collector/notifier
        statistics."""
        alerts = self.reporter.active_alerts()
        return {
            "running": self.running,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "uptime_seconds": None
            if self.started_at is None
            else self.clock.now() - self.started_at,
            "interval_seconds": self.interval,
            "store": str(self.store.backend),
            "storage": self.store.stats(),
            "active_alerts": [a.to_dict() for a in alerts],
            "evaluator": self.engine.evaluating(),
            "collector": self.collector.stats() if self.collector is not None else {},
            "notifications": self.notifier.stats(),
            "recorder": {"pending": self.recorder.pending, "dropped": self.recorder.dropped},
        }

    def health_report(self) -> HealthReport:
        """The Reporter's typed health report, after flushing what was recorded."""
        self.recorder.flush()
        return self.reporter.health_report()

    def generate_health_report(self) -> dict[str, Any]:
        """The health report's JSON (``overall_status``, alerts, recommendations, ...)."""
        return self.health_report().to_dict()

    def get_dashboard_data(self) -> dict[str, Any]:
        """Dashboard data for the configured sections, JSON-ready."""
        self.recorder.flush()
        return self.reporter.dashboard_data().to_dict()

    def cleanup(self, days: float) -> int:
        """Delete samples older than ``days``; returns how many were removed."""
        if days < 0:
            raise InvalidArgumentError(f"days must be >= 0, got {days}")
        cutoff = self.clock.now_ns() - round(days * 86_400 * NS_PER_S)
        return self.store.delete(before=np.datetime64(cutoff, "ns"))


_shared: MonitoringService | None = None
_shared_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # ``monitoring_service`` is created on first use, never at import.
    global _shared
    if name == "monitoring_service":
        with _shared_lock:
            if _shared is None:
                _shared = MonitoringService()
            return _shared
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
