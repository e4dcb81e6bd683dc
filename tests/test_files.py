"""Files metricskit writes never follow a symlink planted at a name it uses."""

import os
import stat
from pathlib import Path

import pytest

from metricskit._files import atomic_write, temp_beside
from metricskit._pidlock import PidLock
from metricskit.report.html import write_dashboard


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file an attacker would like metricskit to overwrite."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def test_atomic_write_replaces_a_symlink_instead_of_writing_through(
    tmp_path: Path, victim: Path
) -> None:
    target = tmp_path / "out.json"
    target.symlink_to(victim)
    atomic_write(target, '{"ok": true}')
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == '{"ok": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim"]


def test_atomic_write_honours_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


def test_temp_beside_is_fresh_and_removed(tmp_path: Path) -> None:
    with temp_beside(tmp_path / "data.parquet") as tmp:
        assert Path(tmp).name.startswith(".data.parquet.") and tmp.endswith(".tmp")
        assert Path(tmp).stat().st_size == 0
    assert list(tmp_path.iterdir()) == []


def test_dashboard_ignores_a_symlink_at_the_old_temp_name(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "dashboard.html"
    Path(f"{target}.tmp-{os.getpid()}").symlink_to(victim)
    write_dashboard("<!DOCTYPE html>\n", target)
    assert victim.read_text() == "precious\n"
    assert target.read_text() == "<!DOCTYPE html>\n"


def test_pid_file_symlink_is_refused(tmp_path: Path, victim: Path) -> None:
    pid_file = tmp_path / "monitoring.pid"
    pid_file.symlink_to(victim)
    with pytest.raises(OSError):
        PidLock(pid_file).acquire()
    assert victim.read_text() == "precious\n"


def test_logs_refuse_a_symlink_at_their_name(tmp_path: Path, victim: Path) -> None:
    from metricskit.alerting.channels import DeliveryError, LogChannel
    from metricskit.alerting.notify import make_test_event
    from metricskit.service import MonitoringService

    (tmp_path / "monitoring.log").symlink_to(victim)
    config = tmp_path / "monitoring.yaml"
    config.write_text("storage: {type: memory}\n")
    with pytest.raises(OSError):
        MonitoringService(config)
    alerts = tmp_path / "alerts.log"
    alerts.symlink_to(victim)
    with pytest.raises(DeliveryError):
        LogChannel(alerts).send([make_test_event("log")])
    assert victim.read_text() == "precious\n"
