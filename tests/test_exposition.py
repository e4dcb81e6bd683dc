import base64

import numpy as np
import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import metricskit as mk
from metricskit.catalog import MetricKind
from metricskit.model import Series, SeriesKey, Tags
from metricskit.server.app import MetricsServer
from metricskit.server.exposition import exposed_name, format_value, generate

T0 = 1_795_046_400
REQUEST = "http.request.duration_seconds"


def put(store: mk.Store, name: str, tags: dict[str, str], values: list[float]) -> None:
    ts = (T0 + np.arange(len(values), dtype=np.int64)) * 10**9
    store.write([Series(SeriesKey.of(name, tags), ts, np.array(values, dtype=float))])


def observe(store: mk.Store, tags: dict[str, str], values: list[float]) -> None:
    """Record request durations the way applications do: through a Recorder."""
    with mk.Recorder(store) as rec:
        rec.record_many(REQUEST, values, T0 + np.arange(len(values)), tags)


@pytest.fixture
def store() -> mk.Store:
    s = mk.open_store("memory://")
    put(s, "system.cpu.usage_percent", {"host": "a"}, [10, 42.5])
    put(s, "system.memory.available_gb", {}, [1.5])
    put(s, "app.health.response_time_ms", {"check": "api"}, [250.0])
    put(s, "system.network.bytes_sent", {}, [100, 250])
    put(s, "business.ai_calls.total", {"model": 'we"ird\\name x'}, [7])
    observe(
        s,
        {"endpoint": "/api/chat", "method": "GET", "status": "200"},
        [0.004, 0.2, 0.2, 3.0, float("nan"), 20.0],
    )
    return s


def test_names_follow_prometheus_conventions() -> None:
    assert exposed_name("system.cpu.usage_percent").sample == "system_cpu_usage_percent"
    assert exposed_name("app.health.response_time_ms").sample == "app_health_response_time_seconds"
    assert exposed_name("app.health.response_time_ms").scale == 1e-3
    assert exposed_name("system.memory.available_gb").sample == "system_memory_available_bytes"
    assert exposed_name("business.ai_calls.total").family == "business_ai_calls"
    assert exposed_name("business.ai_calls.total").sample == "business_ai_calls_total"
    assert exposed_name("system.network.bytes_sent").sample == "system_network_bytes_sent_total"
    assert exposed_name("x.y", MetricKind.HISTOGRAM).family == "x_y"
    assert [format_value(v) for v in (1.0, 0.25, float("nan"), float("inf"))] == [
        "1.0",
        "0.25",
        "NaN",
        "+Inf",
    ]


def _samples(families: list) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_text_format_parses_back(store: mk.Store) -> None:
    text = generate(store).decode()
    families = {f.name: f for f in parse_text(text)}
    samples = _samples(list(families.values()))
    assert samples[("system_cpu_usage_percent", (("host", "a"),))] == 42.5
    assert samples[("system_memory_available_bytes", ())] == 1.5 * 2**30
    assert samples[("app_health_response_time_seconds", (("check", "api"),))] == 0.25
    assert samples[("system_network_bytes_sent_total", ())] == 250
    assert samples[("business_ai_calls_total", (("model", 'we"ird\\name x'),))] == 7
    assert families["system_network_bytes_sent"].type == "counter"
    hist = families["http_request_duration_seconds"]
    assert hist.type == "histogram"
    labels = (("endpoint", "/api/chat"), ("method", "GET"), ("status", "200"))
    assert samples[("http_request_duration_seconds_count", labels)] == 5  # NaN is not counted
    assert samples[("http_request_duration_seconds_sum", labels)] == pytest.approx(23.404)
    assert (
        samples[
            ("http_request_duration_seconds_bucket", (*labels[:1], ("le", "0.005"), *labels[1:]))
        ]
        == 1
    )
    assert (
        samples[
            ("http_request_duration_seconds_bucket", (*labels[:1], ("le", "0.25"), *labels[1:]))
        ]
        == 3
    )
    assert (
        samples[
            ("http_request_duration_seconds_bucket", (*labels[:1], ("le", "+Inf"), *labels[1:]))
        ]
        == 5
    )


def test_openmetrics_parses_back(store: mk.Store) -> None:
    text = generate(store, openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_om(text)}
    assert families["business_ai_calls"].type == "counter"
    assert families["http_request_duration_seconds"].type == "histogram"
    assert _samples(list(families.values()))[("system_cpu_usage_percent", (("host", "a"),))] == 42.5


def test_empty_store_and_name_filter(store: mk.Store) -> None:
    assert generate(mk.open_store("memory://")) == b""
    text = generate(store, names=["system.cpu.usage_percent"]).decode()
    assert "system_cpu_usage_percent" in text and "http_request" not in text


def test_colliding_names_expose_one(caplog: pytest.LogCaptureFixture) -> None:
    s = mk.open_store("memory://")
    put(s, "a.b", {}, [1])
    put(s, "a_b", {}, [2])
    text = generate(s).decode()
    assert text.count("\na_b ") == 1
    assert "taken by" in caplog.text


def test_server_serves_and_protects(store: mk.Store) -> None:
    with MetricsServer(store, port=0, basic_auth=("prom", "s3cret")) as server:
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 401
        token = base64.b64encode(b"prom:s3cret").decode()
        ok = requests.get(
            f"{server.url}/metrics", headers={"Authorization": f"Basic {token}"}, timeout=5
        )
        assert ok.status_code == 200
        assert ok.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "system_cpu_usage_percent" in ok.text
        om = requests.get(
            f"{server.url}/metrics",
            headers={"Authorization": f"Basic {token}", "Accept": "application/openmetrics-text"},
            timeout=5,
        )
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")
        missing = requests.get(f"{server.url}/nope", headers={"Authorization": f"Basic {token}"})
        assert missing.status_code == 404
    with MetricsServer(store, port=0, bearer_token="tok") as server:
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 401
        good = requests.get(f"{server.url}/metrics", headers={"Authorization": "Bearer tok"})
        assert good.status_code == 200


def test_a_histogram_series_tagged_le_is_left_out_not_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = mk.open_store("memory://")
    # A Recorder refuses the tag; a store written to directly may hold such parts.
    with pytest.raises(mk.InvalidMetricError, match="'le'"):
        observe(s, {"le": "x"}, [0.1])
    t = np.array([T0 * 10**9])
    bad = {"le": "x"}
    s.write(
        [
            Series(SeriesKey.of(f"{REQUEST}:count", bad), t, np.array([1.0])),
            Series(SeriesKey.of(f"{REQUEST}:sum", bad), t, np.array([0.1])),
            Series(SeriesKey.of(f"{REQUEST}:bucket", {"le": "+Inf"}), t, np.array([1.0])),
        ]
    )
    observe(s, {"endpoint": "/ok"}, [0.1])
    put(s, "system.cpu.usage_percent", {}, [5.0])
    text = generate(s).decode()
    families = {f.name: f for f in parse_text(text)}  # parses: no sample with le twice
    assert 'le="x"' not in text
    assert families["system_cpu_usage_percent"].samples[0].value == 5.0
    assert any(
        x.labels.get("endpoint") == "/ok" for x in families["http_request_duration_seconds"].samples
    )
    assert "may not carry the tag 'le'" in caplog.text
    list(parse_om(generate(s, openmetrics=True).decode()))


def test_a_gauge_named_like_a_histogram_sample_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = mk.open_store("memory://")
    observe(s, {"endpoint": "/ok"}, [0.1, 0.2])
    put(s, "http.request.duration_seconds_count", {"endpoint": "/ok"}, [99.0])
    put(s, "http.request.duration_seconds_sum", {}, [98.0])
    put(s, "system.cpu.usage_percent", {}, [5.0])
    text = generate(s).decode()
    assert "99" not in text and "98" not in text
    assert text.count("http_request_duration_seconds_count{") == 1
    samples = _samples(list(parse_text(text)))
    assert samples[("http_request_duration_seconds_count", (("endpoint", "/ok"),))] == 2
    assert samples[("system_cpu_usage_percent", ())] == 5.0
    assert "taken by 'http.request.duration_seconds'" in caplog.text


def test_a_counter_named_like_a_gauge_total_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    s = mk.open_store("memory://")
    put(s, "app.jobs", {}, [1.0])  # a gauge app_jobs
    put(s, "app.jobs_total", {}, [2.0])  # a counter: family app_jobs, sample app_jobs_total
    put(s, "app.x.y_total", {}, [3.0])  # counter family app_x_y, sample app_x_y_total
    put(s, "app.x.y_total.gauge", {}, [4.0])
    text = generate(s).decode()
    list(parse_text(text))
    list(parse_om(generate(s, openmetrics=True).decode()))
    assert "app_jobs 1.0" in text and "app_jobs_total" not in text


def test_a_series_that_cannot_be_encoded_costs_only_its_family(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = mk.open_store("memory://")
    # Only data stored before the model checked text can hold a lone surrogate.
    old = SeriesKey("app.old.value", Tags._trusted((("k", "bad\ud800"),)))
    s.backend.write([Series(old, np.array([T0 * 10**9]), np.array([1.0]))])
    put(s, "system.cpu.usage_percent", {}, [5.0])
    text = generate(s).decode()
    assert _samples(list(parse_text(text))) == {("system_cpu_usage_percent", ()): 5.0}
    assert "not exposing 'app.old.value'" in caplog.text
    with MetricsServer(s, port=0) as server:
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 200
