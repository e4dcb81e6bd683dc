"""HTTPS: a self-signed certificate made by ``openssl`` in the test, real HTTPS requests
that verify it, plain HTTP refused, auth over TLS, and the config, the flags of
``metricskit serve`` and ``start``, and docs/operations.md's HTTPS example."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import metricskit as mk
from metricskit.config import load_config
from metricskit.errors import ConfigError, InvalidArgumentError
from metricskit.server.app import MetricsServer
from tests.services import binary, free_port, metricskit_serve, running

ROOT = Path(__file__).resolve().parents[1]


def _certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def store() -> Iterator[mk.Store]:
    s = mk.open_store("memory://")
    key = mk.SeriesKey.of("queue.depth")
    s.write([mk.Series(key, np.array([time.time_ns()]), np.array([7.5]))])
    yield s
    s.close()


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


# the server's auth argument; the client's right and wrong credentials
AUTH: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "none": ({}, None, None),
    "basic": ({"basic_auth": ("ops", "s3cret")}, ("ops", "s3cret"), ("ops", "nope")),
    "bearer": ({"bearer_token": "tok"}, _Bearer("tok"), _Bearer("nope")),
}


@pytest.mark.parametrize("auth", AUTH)
def test_https_verified_against_the_certificate_and_auth_over_tls(
    store: mk.Store, pem: tuple[Path, Path], auth: str
) -> None:
    cert, key = pem
    protection, right, wrong = AUTH[auth]
    with (
        MetricsServer(store, port=0, tls_certfile=cert, tls_keyfile=key, **protection) as server,
        requests.Session() as client,
    ):
        assert server.url.startswith("https://127.0.0.1:") and server.tls
        # a session's verify loses to $REQUESTS_CA_BUNDLE unless it leaves the environment be
        client.verify, client.auth, client.trust_env = str(cert), right, False
        metrics = client.get(f"{server.url}/metrics", timeout=30)
        assert metrics.status_code == 200 and "queue_depth 7.5" in metrics.text
        query = client.post(f"{server.url}/api/v1/query", data={"query": "queue_depth * 2"})
        assert query.json()["data"]["result"][0]["value"][1] == "15"
        if protection:
            for credentials in (None, wrong):
                denied = requests.get(
                    f"{server.url}/metrics", verify=str(cert), auth=credentials, timeout=30
                )
                assert denied.status_code == 401
        # the system's CA store does not know a self-signed certificate
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{server.url}/metrics", auth=right, timeout=30)
        # plain HTTP to the TLS port gets no HTTP answer
        with pytest.raises(requests.ConnectionError):
            plain = server.url.replace("https://", "http://")
            requests.get(f"{plain}/metrics", auth=right, timeout=30)
        assert client.get(f"{server.url}/metrics", timeout=30).ok  # still serving


def test_a_certificate_that_cannot_be_loaded_is_an_error_at_once(
    store: mk.Store, pem: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = pem
    _other_cert, other_key = _certificate(tmp_path, "other")
    with pytest.raises(InvalidArgumentError, match="together, or neither"):
        MetricsServer(store, port=0, tls_certfile=cert)
    with pytest.raises(InvalidArgumentError, match="key values mismatch") as info:
        MetricsServer(store, port=0, tls_certfile=cert, tls_keyfile=other_key)
    assert str(cert) in str(info.value) and str(other_key) in str(info.value)
    with pytest.raises(InvalidArgumentError, match="no such file"):
        MetricsServer(store, port=0, tls_certfile=tmp_path / "missing.crt", tls_keyfile=key)


def test_warns_when_credentials_would_cross_the_network_in_clear(
    store: mk.Store, pem: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = pem
    with caplog.at_level(logging.WARNING, "metricskit.server.app"):
        MetricsServer(store, host="127.0.0.1", port=0, bearer_token="tok").stop()
        tls: dict[str, Any] = {"tls_certfile": cert, "tls_keyfile": key}
        MetricsServer(store, host="0.0.0.0", port=0, bearer_token="tok", **tls).stop()
        assert "in clear" not in caplog.text
        MetricsServer(store, host="0.0.0.0", port=0, bearer_token="tok").stop()
    assert "with auth but without TLS" in caplog.text and "beyond loopback" not in caplog.text


def test_config_takes_both_files_or_neither_with_the_line(tmp_path: Path) -> None:
    text = "integrations:\n  prometheus:\n    port: 9464\n    tls_keyfile: tls/key.pem\n"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "monitoring.yaml", text=text)
    assert str(info.value) == (
        f"{tmp_path / 'monitoring.yaml'}:4: integrations.prometheus.tls_keyfile: "
        "tls_keyfile needs tls_certfile too (both or neither)"
    )
    both = text + "    tls_certfile: tls/cert.pem\n"
    settings = load_config(tmp_path / "monitoring.yaml", text=both).integrations.prometheus
    assert (settings.tls_certfile, settings.tls_keyfile) == ("tls/cert.pem", "tls/key.pem")


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then its stdout and stderr; it must exit 0."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out, err


def test_serve_with_the_certificate_from_the_config_or_the_flags(
    tmp_path: Path, pem: tuple[Path, Path]
) -> None:
    cert, key = pem
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "c.pem").write_bytes(cert.read_bytes())
    (tmp_path / "tls" / "k.pem").write_bytes(key.read_bytes())
    (tmp_path / "monitoring.yaml").write_text(
        "storage: {type: memory}\n"
        "integrations:\n  prometheus:\n    basic_auth: {username: ops, password: pw}\n"
        "    tls_certfile: tls/c.pem\n    tls_keyfile: tls/k.pem\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # relative paths in the config are the config file's, not the working directory's
    proc, base = metricskit_serve(elsewhere, "-c", "../monitoring.yaml", verify=str(cert))
    try:
        response = requests.get(f"{base}/api/health", auth=("ops", "pw"), verify=str(cert))
        assert response.status_code == 200 and "overall_status" in response.json()
    finally:
        _stop(proc)
    (tmp_path / "plain.yaml").write_text("storage: {type: memory}\n")
    flags = ["-c", "plain.yaml", "--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    proc, base = metricskit_serve(tmp_path, *flags, verify=str(cert))
    try:
        assert requests.get(f"{base}/metrics", verify=str(cert), timeout=30).status_code == 200
    finally:
        out, _err = _stop(proc)
    assert f"serving {base} " in out


def _metricskit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metricskit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_tls_arguments_are_one_line_and_exit_3(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, _key = pem
    _other, other_key = _certificate(tmp_path, "other")
    (tmp_path / "monitoring.yaml").write_text("storage: {type: memory}\n")
    for args, says in [
        (("serve", "--tls-certfile", str(cert)), "give --tls-certfile and --tls-keyfile together"),
        (("serve", "--port", "0", "--tls-certfile", str(cert), "--tls-keyfile", str(other_key)),
         "key values mismatch"),
        (("start", "--quiet", "--tls-certfile", str(cert), "--tls-keyfile", str(other_key)),
         "needs integrations.prometheus.enabled"),
    ]:  # fmt: skip
        done = _metricskit(tmp_path, *args)
        assert done.returncode == 3, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (args, done.stderr)


def test_start_serves_https(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, key = pem
    port = free_port()
    (tmp_path / "monitoring.yaml").write_text(
        "storage: {type: memory}\n"
        f"integrations:\n  prometheus: {{enabled: true, port: {port}, bearer_token: tok}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricskit", "start", "--quiet", "--duration", "600",
         "--tls-certfile", str(cert), "--tls-keyfile", str(key)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}/api/v1/labels"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                response = requests.get(
                    url, headers={"Authorization": "Bearer tok"}, verify=str(cert), timeout=5
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "start did not serve"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "success"
    finally:
        _out, err = _stop(proc)
    assert "Traceback" not in err


def _block(text: str, lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)
    assert found is not None, lang
    return found.group(1)


def test_operations_https_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/operations.md's HTTPS section: its openssl command and config, served and
    queried over verified HTTPS with the bearer token."""
    binary("openssl")
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("### HTTPS", 1)[1].split("\n### ", 1)[0]
    subprocess.run(["bash", "-euo", "pipefail", "-c", _block(section, "bash")], cwd=tmp_path,
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    config = "storage: {type: memory}\n" + _block(section, "yaml")
    (tmp_path / "monitoring.yaml").write_text(config)
    monkeypatch.setenv("METRICS_TOKEN", "from-the-env")
    cert = str(tmp_path / "tls" / "metricskit.crt")
    proc, base = metricskit_serve(tmp_path, verify=cert)
    try:
        bearer = {"Authorization": "Bearer from-the-env"}
        response = requests.get(f"{base}/api/v1/labels", headers=bearer, verify=cert, timeout=30)
        assert response.status_code == 200
        assert requests.get(f"{base}/metrics", verify=cert, timeout=30).status_code == 401
    finally:
        _stop(proc)


@pytest.mark.services
def test_prometheus_scrapes_over_https_with_the_certificate_as_ca(
    store: mk.Store, pem: tuple[Path, Path], tmp_path: Path
) -> None:
    """docs/operations.md's advice for Prometheus: ``scheme: https`` and the certificate
    as ``ca_file`` (with the bearer token) scrape the TLS server; a real Prometheus."""
    cert, key = pem
    with MetricsServer(
        store, port=0, bearer_token="tok", tls_certfile=cert, tls_keyfile=key
    ) as server:
        (tmp_path / "prometheus.yml").write_text(
            "scrape_configs:\n"
            "  - job_name: metricskit\n"
            "    scrape_interval: 1s\n"
            "    scheme: https\n"
            "    authorization: {credentials: tok}\n"
            f"    tls_config: {{ca_file: {cert}}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
        )
        port = free_port()
        prom = f"http://127.0.0.1:{port}"
        argv = [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with running(argv, f"{prom}/-/ready", log=tmp_path / "prometheus.log"):
            deadline = time.monotonic() + 60
            while True:
                found = requests.get(f"{prom}/api/v1/targets", timeout=30).json()["data"]
                targets = found["activeTargets"]  # empty until discovery has run
                if targets and targets[0]["health"] == "up":
                    break
                assert time.monotonic() < deadline, targets
                time.sleep(0.2)
            scraped = requests.get(f"{prom}/api/v1/query", params={"query": "queue_depth"}).json()
    assert targets[0]["scrapeUrl"].startswith("https://127.0.0.1:")
    assert [r["value"][1] for r in scraped["data"]["result"]] == ["7.5"]
