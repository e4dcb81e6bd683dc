"""Backend options given to ``open_store``: unknown ones fail clearly on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

import metricskit as mk
from metricskit.errors import InvalidArgumentError, MetricsKitError


@pytest.mark.parametrize(
    ("url", "known"),
    [
        ("memory://", "none"),
        ("sqlite:///{tmp}/s.db", "busy_timeout, engine_options, read_cache_mb, table_prefix"),
        ("parquet://{tmp}/pq", "flush_samples, fsync, max_files_per_partition, row_group_size"),
    ],
)
def test_an_unknown_option_names_itself_and_the_known_ones(
    url: str, known: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        mk.open_store(url.format(tmp=tmp_path), flush_sample=10)
    assert isinstance(caught.value, MetricsKitError)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "does not take the option flush_sample;" in message
    assert message.endswith(f"its options are: {known}")


def test_known_options_still_reach_the_backend(tmp_path: Path) -> None:
    store = mk.open_store(f"parquet://{tmp_path}/pq", flush_samples=10, fsync=False)
    try:
        assert store.backend.flush_samples == 10  # type: ignore[attr-defined]
    finally:
        store.close()
