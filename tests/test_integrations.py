import threading
from collections.abc import Iterator

import pytest
import requests

import metricskit as mk
from metricskit.recorder import Recorder

REQUEST = "http.request.duration_seconds"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder(mk.open_store("memory://"), flush_interval=60)
    yield rec
    rec.close()


def recorded(rec: Recorder) -> dict[tuple[str, str, str], int]:
    rec.flush()
    return {
        (s.tags["endpoint"], s.tags["method"], s.tags["status"]): len(s)
        for s in rec.store.query(REQUEST)
    }


def flask_app(rec: Recorder):  # type: ignore[no-untyped-def]
    from flask import Flask

    from metricskit.integrations.flask import init_app

    app = Flask("t")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        return f"user {user_id}"

    @app.post("/boom")
    def boom() -> str:
        raise RuntimeError("handler failed")

    init_app(app, rec)
    return app


def test_flask_on_a_real_server(recorder: Recorder) -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, flask_app(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for uid in (1, 2, 3):
            assert requests.get(f"{base}/users/{uid}", timeout=5).status_code == 200
        assert requests.post(f"{base}/boom", timeout=5).status_code == 500
        assert requests.get(f"{base}/no/such/{'x' * 5}", timeout=5).status_code == 404
    finally:
        server.shutdown()
    assert recorded(recorder) == {
        ("/users/<int:user_id>", "GET", "200"): 3,
        ("/boom", "POST", "500"): 1,
        ("<unmatched>", "GET", "404"): 1,
    }


def test_flask_exception_propagates_in_testing_mode(recorder: Recorder) -> None:
    app = flask_app(recorder)
    app.testing = True
    with pytest.raises(RuntimeError, match="handler failed"):
        app.test_client().post("/boom")
    assert recorded(recorder) == {("/boom", "POST", "500"): 1}


def test_plain_wsgi(recorder: Recorder) -> None:
    from werkzeug.test import Client

    from metricskit.integrations import WSGIMiddleware

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"] == "/fail":
            raise ValueError("nope")
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = Client(WSGIMiddleware(app, recorder))
    assert client.get("/items").status_code == 201
    with pytest.raises(ValueError):
        client.get("/fail")
    assert recorded(recorder) == {("/items", "GET", "201"): 1, ("/fail", "GET", "500"): 1}


def test_starlette_and_fastapi(recorder: Recorder) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from metricskit.integrations import ASGIMiddleware

    app = FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("crash")

    app.add_middleware(ASGIMiddleware, recorder=recorder)
    client = TestClient(app, raise_server_exceptions=True)
    assert client.get("/orders/7").json() == {"id": 7}
    assert client.get("/orders/8").status_code == 200
    with pytest.raises(RuntimeError, match="crash"):
        client.get("/crash")
    assert client.get("/missing").status_code == 404
    assert recorded(recorder) == {
        ("/orders/{order_id}", "GET", "200"): 2,
        ("/crash", "GET", "500"): 1,
        ("<unmatched>", "GET", "404"): 1,
    }


def _load_flask_example():  # type: ignore[no-untyped-def]
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "flask_app.py"
    spec = importlib.util.spec_from_file_location("metricskit_flask_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("integration", ["seed", "init_app"])
def test_health_checker_stays_out_of_the_app_request_metrics(integration: str) -> None:
    """The real checker against the real example app: its requests (and the expected 401
    of /api/auth/me) are not application requests; a user's request still is."""
    from werkzeug.serving import make_server

    from metricskit.collect.sources.http import default_http_checks
    from metricskit.config import load_config
    from metricskit.service import MonitoringService

    example = _load_flask_example()
    config = load_config(text="storage: {type: memory}\n")
    with MonitoringService(config, write_logs=False) as service:
        server = make_server("127.0.0.1", 0, example.create_app(service, integration=integration))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_port}"
        checks = default_http_checks(base)
        try:
            for check in checks:
                status = check.collect()[0]
                assert status.value == 1.0, check.last_result
            assert requests.get(f"{base}/api/auth/me", timeout=5).status_code == 401
        finally:
            for check in checks:
                check.close()
            server.shutdown()
        endpoint = "auth_me" if integration == "seed" else "/api/auth/me"
        service.recorder.flush()
        counts = {s.tags["endpoint"]: len(s) for s in service.store.query(REQUEST)}
        assert counts == {endpoint: 1}


def test_wsgi_and_asgi_skip_the_health_checker(recorder: Recorder) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from werkzeug.serving import make_server

    from metricskit.collect.sources.http import HttpCheck
    from metricskit.integrations import HEALTH_CHECK_HEADER, ASGIMiddleware, WSGIMiddleware

    def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"who are you"]

    server = make_server("127.0.0.1", 0, WSGIMiddleware(wsgi_app, recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    check = HttpCheck(f"http://127.0.0.1:{server.server_port}/me", expect_status=401)
    try:
        assert check.collect()[0].value == 1.0, check.last_result
        assert requests.get(f"http://127.0.0.1:{server.server_port}/me", timeout=5).ok is False
    finally:
        check.close()
        server.shutdown()
    assert recorded(recorder) == {("/me", "GET", "401"): 1}

    app = FastAPI()

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    app.add_middleware(ASGIMiddleware, recorder=recorder)
    client = TestClient(app)
    assert client.get("/ping", headers={HEALTH_CHECK_HEADER: "1"}).status_code == 200
    assert client.get("/ping").status_code == 200
    assert recorded(recorder)[("/ping", "GET", "200")] == 1
