"""Several processes, standing for several hosts, record into one shared store; one
Reporter sees all of it, tagged by host."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

import metricskit as mk
from metricskit.report.reporter import Reporter
from metricskit.testing import ManualClock
from tests.services import MARIADB_URL, POSTGRES_URL, require_database

HOSTS = ("web-1", "web-2", "web-3")
REQUESTS_PER_HOST = 300

WRITER = """
import sys, metricskit as mk
url, host, cpu, now = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
store = mk.open_store(url, **({"table_prefix": sys.argv[5]} if len(sys.argv) > 5 else {}))
with mk.Recorder(store, host=host, batch_size=50) as rec:
    rec.record("system.cpu.usage_percent", cpu, timestamp=now)
    for i in range({n}):
        rec.record_request("/api/chat", 0.01 * (i % 10), 500 if i % 100 == 0 else 200,
                           method="POST", timestamp=now - 60 + i * 0.1)
store.close()
""".replace("{n}", str(REQUESTS_PER_HOST))


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}", []
        return
    url = require_database(POSTGRES_URL if request.param == "postgresql" else MARIADB_URL)
    prefix = f"mw{uuid.uuid4().hex[:8]}_"
    yield url, [prefix]
    store = mk.open_store(url, table_prefix=prefix)
    store.delete()
    store.close()
    with sa.create_engine(url).begin() as conn:
        for table in sa.inspect(conn).get_table_names():
            if table.startswith(prefix):
                conn.execute(sa.text(f"DROP TABLE {table}"))


def test_hosts_share_one_store(shared_store) -> None:  # type: ignore[no-untyped-def]
    url, extra = shared_store
    now = time.time()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, host, str(10.0 * (i + 1)), str(now), *extra],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, host in enumerate(HOSTS)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = mk.open_store(url, **({"table_prefix": extra[0]} if extra else {}))
    try:
        cpu = {
            key.tags["host"]: value for key, _ts, value in store.latest("system.cpu.usage_percent")
        }
        assert cpu == {"web-1": 10.0, "web-2": 20.0, "web-3": 30.0}
        report = Reporter(store, clock=ManualClock(now + 1)).health_report().to_dict()
        assert report["system"]["system.cpu.usage_percent"] == cpu
        chat = report["performance"]["endpoints"]["/api/chat"]
        assert chat["count"] == len(HOSTS) * REQUESTS_PER_HOST
        assert chat["errors"] == len(HOSTS) * (REQUESTS_PER_HOST // 100)
        per_host = {k.tags["host"] for k in store.series("http.request.duration_seconds")}
        assert per_host == set(HOSTS)
    finally:
        store.close()
