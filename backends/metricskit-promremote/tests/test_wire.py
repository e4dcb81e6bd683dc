"""The remote-write request bytes, checked against protobuf's own serializer."""

from __future__ import annotations

import cramjam
import numpy as np
from metricskit.model import Series, SeriesKey

from metricskit_promremote import VictoriaMetricsBackend
from metricskit_promremote._proto import TimeSeries, WriteRequest, encode_samples


def test_numpy_sample_encoding_is_protobufs() -> None:
    rng = np.random.default_rng(1)
    edge = [0, 1, -1, 127, 128, 16383, 16384, 2**62, 2**63 - 1, -(2**63)]
    ts = np.concatenate([np.array(edge), rng.integers(-(2**40), 2**45, 2000)]).astype(np.int64)
    values = rng.normal(size=ts.size)
    values[::7] = 0.0
    values[3] = -0.0
    values[5] = float("nan")
    reference = TimeSeries()
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        reference.samples.add(value=v, timestamp=t)
    assert encode_samples(ts, values) == reference.SerializeToString()


def test_request_parses_as_a_write_request() -> None:
    backend = VictoriaMetricsBackend("victoriametrics://127.0.0.1:1", max_samples_per_request=3)
    key = SeriesKey.of("system.cpu.usage_percent", {"host": "a"})
    ts = 1_795_046_400 * 10**9 + np.arange(5, dtype=np.int64) * 10**9 + 123
    prepared = backend._prepare([Series(key, ts, np.array([1.0, float("nan"), 3, 4, 5]))])
    bodies = list(backend._requests(prepared))
    assert len(bodies) == 2  # 5 samples, at most 3 per request
    parsed = [WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(b))) for b in bodies]
    (first,) = parsed[0].timeseries
    assert [(lab.name, lab.value) for lab in first.labels] == [
        ("__name__", "system_cpu_usage_percent"),
        ("host", "a"),
        ("mk_name", "system.cpu.usage_percent"),
    ]
    samples = [s for req in parsed for s in req.timeseries[0].samples]
    assert [s.timestamp for s in samples] == (ts // 10**6).tolist()
    assert np.isnan(samples[1].value) and samples[2].value == 3.0
