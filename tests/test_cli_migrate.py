"""``metricskit migrate`` as a user runs it: a real process on a copy of a schema-1 file."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import metricskit as mk

FIXTURE_V1 = Path(__file__).parent / "storage" / "data" / "sqlite_v1.db"


def migrate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metricskit", "migrate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _layout(path: Path) -> tuple[int, int, int]:
    """(schema version, head rows, samples in blocks) read with sqlite3, not metricskit."""
    with sqlite3.connect(path) as raw:
        version = raw.execute("SELECT value FROM metricskit_meta WHERE key = 'schema_version'")
        head = raw.execute("SELECT COUNT(*) FROM metricskit_samples")
        blocks = raw.execute("SELECT COALESCE(SUM(n), 0) FROM metricskit_blocks")
        return version.fetchone()[0], head.fetchone()[0], blocks.fetchone()[0]


def test_migrate_upgrades_a_schema_1_file_then_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.write_bytes(FIXTURE_V1.read_bytes())
    with sqlite3.connect(path) as raw:  # schema 1: a row per sample, no blocks table
        version = "SELECT value FROM metricskit_meta WHERE key = 'schema_version'"
        assert raw.execute(version).fetchone() == (1,)
        assert raw.execute("SELECT COUNT(*) FROM metricskit_samples").fetchone() == (6008,)
    first = migrate(tmp_path, "--store", f"sqlite:///{path}")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["schema version before: 1", "schema version after: 2"]
    assert _layout(path) == (2, 0, 6008)
    again = migrate(tmp_path, "--store", f"sqlite:///{path}")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["schema version before: 2", "schema version after: 2"]
    store = mk.open_store(f"sqlite:///{path}")  # and this process reads what it left
    try:
        assert store.stats()["samples"] == 6008
        assert len(store.series()) == 3
    finally:
        store.close()


def test_migrate_takes_the_store_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.write_bytes(FIXTURE_V1.read_bytes())
    config = tmp_path / "monitoring.yaml"
    config.write_text(f"storage: {{type: 'sqlite:///{path}'}}\n")
    done = migrate(tmp_path, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["schema version before: 1", "schema version after: 2"]
    assert _layout(path) == (2, 0, 6008)


def test_migrate_a_store_without_schema_versions_or_out_of_reach(tmp_path: Path) -> None:
    memory = migrate(tmp_path, "--store", "memory://")
    assert memory.returncode == 0, memory.stderr
    assert memory.stdout.strip().endswith("no schema version, nothing to migrate")
    down = migrate(tmp_path, "--store", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert down.returncode == 3
    assert len(down.stderr.strip().splitlines()) == 1 and "Traceback" not in down.stderr
