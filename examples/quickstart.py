"""Record a minute of synthetic traffic into the default SQLite store and read it back.

Run from a fresh clone: ``bash scripts/setup.sh && .venv/bin/python examples/quickstart.py``.
"""

from __future__ import annotations

import random
import time

import metricskit as mk


def main() -> None:
    store = mk.open_store("sqlite:///metrics.db")
    now = time.time()
    rnd = random.Random(1)
    with mk.Recorder(store) as rec:
        for i in range(600):
            t = now - 60 + i * 0.1
            endpoint = rnd.choice(["/api/chat", "/api/health", "/"])
            status = 500 if rnd.random() < 0.03 else 200
            rec.record_request(endpoint, rnd.lognormvariate(-2.5, 0.6), status, method="GET")
            rec.record(
                "business.ai_cost",
                round(rnd.uniform(0.001, 0.02), 4),
                timestamp=t,
                tags={"model": "claude-sonnet"},
            )
    print(f"store: {store!r}")
    print(f"stats: {store.stats()}")
    frame = store.frame("http.request.duration_seconds")
    summary = frame.groupby("endpoint", observed=True)["value"].describe(percentiles=[0.5, 0.95])
    print("request durations (s) by endpoint:")
    print(summary[["count", "mean", "50%", "95%"]].round(4).to_string())
    store.close()


if __name__ == "__main__":
    main()
