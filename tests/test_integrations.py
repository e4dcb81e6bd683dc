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
