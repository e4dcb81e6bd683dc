"""HTTP checks against a real http.server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metricskit.collect.sources import HttpCheck, default_http_checks
from metricskit.testing import ManualClock
from tests.services import free_port

RELEASE = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    routes = {
        "/api/health": (200, "application/json", json.dumps({"status": "ok"}).encode()),
        "/": (200, "text/html; charset=utf-8", b"<!doctype html><title>app</title>"),
        "/api/auth/me": (401, "application/json", b'{"error": "unauthenticated"}'),
        "/boom": (500, "text/plain", b"internal error"),
        "/badjson": (200, "application/json", b"{not json"),
        "/plain": (200, "text/plain", b"hello"),
    }

    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/api/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            RELEASE.wait(5)
            status, ctype, body = 200, "application/json", b"{}"
        else:
            status, ctype, body = self.routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RELEASE.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()


def _by_name(samples):
    return {s.name: s for s in samples}


def test_seed_defaults_all_pass(app):
    checks = default_http_checks(app)
    assert [c.name for c in checks] == ["/api/health", "/", "/api/auth/me"]
    for check in checks:
        got = _by_name(check.collect())
        assert got["app.health.status"].value == 1.0, check.last_result
        assert got["app.health.response_time_ms"].value > 0.0
        assert got["app.health.status"].tags == {"check": check.name, "url": check.url}
        assert check.last_result is not None and check.last_result.ok
        assert check.last_result.reason == "ok"
        check.close()
    assert checks[2].last_result.status_code == 401


@pytest.mark.parametrize(
    ("path", "kwargs", "reason"),
    [
        ("/boom", {}, "expected status 200, got 500"),
        ("/api/auth/me", {}, "expected status 200, got 401"),
        ("/api/health", {"expect_status": 401}, "expected status 401, got 200"),
        ("/plain", {"expect_json": True}, "expected JSON, got content type 'text/plain'"),
        ("/badjson", {"expect_json": True}, "body is not valid JSON"),
        ("/api/health", {"expect_html": True}, "expected HTML"),
    ],
)
def test_wrong_answers_are_status_zero_with_reason(app, path, kwargs, reason):
    check = HttpCheck(app + path, **kwargs)
    got = _by_name(check.collect())
    assert got["app.health.status"].value == 0.0
    # a response arrived, so its time is still reported
    assert got["app.health.response_time_ms"].value > 0.0
    assert not check.last_result.ok
    assert reason in check.last_result.reason


def test_several_acceptable_statuses(app):
    check = HttpCheck(app + "/api/auth/me", expect_status=[200, 401])
    assert _by_name(check.collect())["app.health.status"].value == 1.0


def test_slow_reply_times_out(app):
    check = HttpCheck(app + "/slow", timeout=0.3)
    samples = check.collect()
    assert [(s.name, s.value) for s in samples] == [("app.health.status", 0.0)]
    assert check.last_result.reason == "timed out after 0.3s"
    assert check.last_result.elapsed_ms is None


def test_closed_port_is_status_zero(caplog):
    check = HttpCheck(f"http://127.0.0.1:{free_port()}/api/health", timeout=2)
    with caplog.at_level(logging.WARNING, logger="metricskit.collect.sources"):
        samples = check.collect()
        check.collect()
    assert [(s.name, s.value) for s in samples] == [("app.health.status", 0.0)]
    assert check.last_result.reason == "connection refused"
    # the outage is logged once, not at every run
    assert len([r for r in caplog.records if "connection refused" in r.getMessage()]) == 1


def test_credentials_stay_out_of_tags():
    check = HttpCheck("http://user:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in repr(check.tags) and "s3cret" not in repr(check)
    assert check.tags["url"] == "http://127.0.0.1:1/x"


def test_not_an_http_url():
    with pytest.raises(ValueError, match="http"):
        HttpCheck("ftp://127.0.0.1/")


def test_last_result_to_dict(app):
    clock = ManualClock(1_700_000_000)
    check = HttpCheck(app + "/api/health", expect_json=True, clock=clock)
    check.collect()
    d = check.last_result.to_dict()
    assert d["ok"] is True and d["status_code"] == 200 and d["elapsed_ms"] > 0
    assert d["checked_at"] == 1_700_000_000  # stamped by the check's clock
    # the old spelling still works, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match="to_dict"):
        assert check.last_result.as_dict() == d


def test_default_checks_take_the_clock(app):
    clock = ManualClock(1_700_000_000)
    for check in default_http_checks(app, clock=clock):
        check.check()
        assert check.last_result.checked_at == 1_700_000_000


def test_redirects_are_followed(app):
    check = HttpCheck(app + "/moved", expect_json=True)
    assert _by_name(check.collect())["app.health.status"].value == 1.0
    assert check.last_result.status_code == 200
