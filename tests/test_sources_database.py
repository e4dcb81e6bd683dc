"""Database checks against real SQLite, PostgreSQL and MariaDB on 127.0.0.1."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from metricskit.collect.sources import DatabaseCheck
from metricskit.testing import ManualClock
from tests.services import MARIADB_URL, POSTGRES_URL, free_port, service_missing


def _by_name(samples):
    return {s.name: s.value for s in samples}


def _reachable(url: str) -> None:
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        service_missing(f"{make_url(url).get_backend_name()} at {url} unreachable: {exc}")


def test_sqlite_reports_what_it_can(tmp_path):
    check = DatabaseCheck(f"sqlite:///{tmp_path}/app.db")
    got = _by_name(check.collect())
    assert got == {"db.status": 1.0, "db.connection_time_ms": got["db.connection_time_ms"]}
    assert got["db.connection_time_ms"] > 0.0
    assert check.unsupported == ("db.connections.active", "db.queries.per_second")
    assert check.last_result.ok


def test_sqlite_unopenable_file_is_down(tmp_path):
    check = DatabaseCheck(f"sqlite:///{tmp_path}/missing-dir/app.db")
    assert _by_name(check.collect()) == {"db.status": 0.0}
    assert "OperationalError" in check.last_result.reason


@pytest.mark.services
@pytest.mark.parametrize("url", [POSTGRES_URL, MARIADB_URL], ids=["postgresql", "mariadb"])
def test_server_reports_connections_and_query_rate(url):
    _reachable(url)
    clock = ManualClock(1_700_000_000)
    check = DatabaseCheck(url, clock=clock)
    first = _by_name(check.collect())
    assert check.last_result.checked_at == 1_700_000_000
    assert first["db.status"] == 1.0
    assert first["db.connection_time_ms"] > 0.0
    assert first["db.connections.active"] >= 1.0  # the check's own connection at least
    assert "db.queries.per_second" not in first  # a rate needs two reads
    # run known work between the reads so the counter must move
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        for _ in range(50):
            conn.execute(sa.text("SELECT 1"))
            conn.commit()
    engine.dispose()
    # PostgreSQL publishes a backend's transaction count when it ends, a moment after
    # the client hung up: read until the count has moved (the clock says 1 s passed)
    deadline = time.monotonic() + 30
    while True:
        clock.advance("1s")
        second = _by_name(check.collect())
        assert second["db.status"] == 1.0
        if second.get("db.queries.per_second", 0.0) > 0.0:
            break
        assert time.monotonic() < deadline, "the server's query count never moved"
    check.close()


@pytest.mark.services
def test_mariadb_wrong_password_is_down_and_password_never_shown(caplog):
    _reachable(MARIADB_URL)
    url = make_url(MARIADB_URL).set(password="Wr0ngPassw0rd")
    check = DatabaseCheck(url)
    with caplog.at_level(logging.DEBUG):
        samples = check.collect()
    assert _by_name(samples) == {"db.status": 0.0}
    assert "Access denied" in check.last_result.reason
    shown = [check.name, check.last_result.reason, repr(check), caplog.text]
    shown += [repr(s) for s in samples]
    assert not any("Wr0ngPassw0rd" in text for text in shown)


@pytest.mark.services
def test_postgres_unknown_role_is_down():
    # the test server trusts local users, so a wrong password would be accepted
    _reachable(POSTGRES_URL)
    url = make_url(POSTGRES_URL).set(username="no_such_role", password="pw")
    check = DatabaseCheck(url)
    assert _by_name(check.collect()) == {"db.status": 0.0}
    assert "no_such_role" in check.last_result.reason
    assert "pw@" not in check.name


@pytest.mark.parametrize(
    "template",
    [
        "postgresql+psycopg://postgres:pw@127.0.0.1:{port}/test",
        "mysql+pymysql://root:pw@127.0.0.1:{port}/test",
    ],
    ids=["postgresql", "mariadb"],
)
def test_closed_port_is_down(template):
    check = DatabaseCheck(template.format(port=free_port()), timeout=2)
    assert _by_name(check.collect()) == {"db.status": 0.0}
    assert check.last_result.reason.startswith("OperationalError")
    assert not check.last_result.ok and check.last_result.elapsed_ms is None


def test_missing_driver_is_down_not_raised():
    check = DatabaseCheck("oracle+nosuchdriver://u:pw@127.0.0.1/x")
    assert _by_name(check.collect()) == {"db.status": 0.0}
    assert "nosuchdriver" in check.last_result.reason


def test_rate_ignores_counter_reset(tmp_path):
    check = DatabaseCheck(f"sqlite:///{tmp_path}/x.db")
    assert check._rate(100.0, 10.0) is None
    assert check._rate(160.0, 12.0) == pytest.approx(30.0)
    assert check._rate(5.0, 13.0) is None  # restarted server: new baseline
    assert check._rate(25.0, 15.0) == pytest.approx(10.0)
