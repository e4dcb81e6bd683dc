"""How ``sqlite_v1.db`` was made: with the schema-1 (row per sample) code of commit 32de68d.

    PYTHONPATH=src python tests/storage/data/make_sqlite_v1.py tests/storage/data/sqlite_v1.db

Kept for the record; the migration test only reads the committed file (a copy of it).
"""

import sqlite3
import sys

import numpy as np

from metricskit.model import Series, SeriesKey
from metricskit.storage.sql import SQLBackend

T0 = 1_795_046_400 * 10**9


def main(path: str) -> None:
    backend = SQLBackend.from_url(f"sqlite:///{path}")
    ts = T0 + np.arange(3000, dtype=np.int64) * 10**10
    gauge = np.round(np.cumsum(np.random.default_rng(1).normal(0, 0.5, 3000)) + 50, 2)
    counter = np.cumsum(np.random.default_rng(2).integers(0, 100, 3000)).astype(float)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 0.1 + 0.2, 1e-300, 5e-324, 2.0**53 + 2])
    backend.write(
        [
            Series(SeriesKey.of("fixture.gauge", {"host": "a"}), ts, gauge),
            Series(SeriesKey.of("fixture.counter_total", {"host": "a", "job": "x"}), ts, counter),
            Series(SeriesKey.of("fixture.special"), T0 + np.arange(8, dtype=np.int64), special),
        ]
    )
    backend.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("VACUUM")
    con.close()


if __name__ == "__main__":
    main(sys.argv[1])
