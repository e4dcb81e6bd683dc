"""How tests/storage/data/sqlite_v1.db was made, with the schema-1 (row per sample) code of commit 32de68d.

    PYTHONPATH=src python tests/storage/data/make_sqlite_v1.py tests/storage/data/sqlite_v1.db
"""
import numpy as np, sqlite3, sys
from metricskit.model import Series, SeriesKey
from metricskit.storage.sql import SQLBackend
path = sys.argv[1]
T0 = 1_795_046_400 * 10**9
b = SQLBackend.from_url(f"sqlite:///{path}")
ts = T0 + np.arange(3000, dtype=np.int64) * 10**10
g = np.round(np.cumsum(np.random.default_rng(1).normal(0, .5, 3000)) + 50, 2)
c = np.cumsum(np.random.default_rng(2).integers(0, 100, 3000)).astype(float)
special = np.array([np.nan, -0.0, np.inf, -np.inf, 0.1 + 0.2, 1e-300, 5e-324, 2.0**53 + 2])
b.write([
    Series(SeriesKey.of("fixture.gauge", {"host": "a"}), ts, g),
    Series(SeriesKey.of("fixture.counter_total", {"host": "a", "job": "x"}), ts, c),
    Series(SeriesKey.of("fixture.special"), T0 + np.arange(8, dtype=np.int64), special),
])
b.close()
con = sqlite3.connect(path); con.execute("PRAGMA wal_checkpoint(TRUNCATE)"); con.execute("PRAGMA journal_mode=DELETE"); con.execute("VACUUM"); con.close()
