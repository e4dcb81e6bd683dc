"""Recorder call cost against prometheus_client, and record_many / flush throughput.

Each figure is the CPU time (``time.process_time``: the machine is shared, and CPU time
does not count the time the process waits for a core) of a loop of calls, best of several
turns taken in rotation, in ns per call:

- ``record()`` with two tags vs ``Counter.labels(endpoint=..., method=...).inc()``
  (goal: ratio <= 0.5);
- a bound handle's ``record()`` vs prometheus_client's pre-bound ``child.inc()``
  (goal: ratio <= 1.0);
- the floor, a lock plus a list append of ``(time.time(), v)``, for reference;
- ``record_many`` samples/s into the buffer (goal >= 20M/s);
- the flush cost per sample (buffer -> numpy -> memory store), measured apart.

The Recorder writes to a ``memory://`` store with batch_size and max_buffer large enough
that no flush happens inside a timed loop.

    python benchmarks/bench_recorder.py            # 15 turns of 100,000 calls each
    python benchmarks/bench_recorder.py --smoke    # tiny, for CI
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import numpy as np
import prometheus_client as pc

import metricskit as mk
from metricskit.recorder import Recorder

EP, METHOD = "/api/chat", "POST"


def best_ns(
    loops: dict[str, Callable[[int], object]], n: int, repeat: int, between: Callable[[], object]
) -> dict[str, float]:
    """Best ns per call of each ``loop(n)``, taking turns so load from elsewhere hits all alike.

    ``between`` runs untimed after each loop (it empties the buffers).
    """
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(repeat):
        for name, loop in loops.items():
            t = time.process_time_ns()
            loop(n)
            best[name] = min(best[name], (time.process_time_ns() - t) / n)
            between()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("-n", type=int, default=100_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    n, repeat = (2_000, 3) if args.smoke else (args.n, args.repeat)
    many = 20_000 if args.smoke else 2_000_000

    store = mk.open_store("memory://")
    rec = Recorder(store, batch_size=10**9, max_buffer=10**9, flush_interval=None)
    registry = pc.CollectorRegistry()
    counter = pc.Counter("http_requests", "requests", ["endpoint", "method"], registry=registry)
    child = counter.labels(endpoint=EP, method=METHOD)
    handle = rec.bind("http.requests.count", {"endpoint": EP, "method": METHOD})
    lock = threading.Lock()
    floor_buf: list[tuple[float, float]] = []

    def mk_record(k: int) -> None:
        record = rec.record
        for _ in range(k):
            record("http.requests.count", 1.0, {"endpoint": EP, "method": METHOD})

    def prom_labels(k: int) -> None:
        labels = counter.labels
        for _ in range(k):
            labels(endpoint=EP, method=METHOD).inc()

    def mk_bound(k: int) -> None:
        record = handle.record
        for _ in range(k):
            record(1.0)

    def prom_child(k: int) -> None:
        inc = child.inc
        for _ in range(k):
            inc()

    def floor(k: int) -> None:
        append, now = floor_buf.append, time.time
        for _ in range(k):
            with lock:
                append((now(), 1.0))

    def empty(k: int) -> None:
        for _ in range(k):
            pass

    def reset() -> None:
        rec.flush()
        floor_buf.clear()

    loops = {
        "record": mk_record,
        "labels": prom_labels,
        "bound": mk_bound,
        "child": prom_child,
        "floor": floor,
        "empty": empty,
    }
    results = best_ns(loops, n, repeat, reset)

    r = results
    print(f"Recorder call cost, best of {repeat} x {n:,} calls, ns/call (loop included)")
    rows = [
        ("empty loop", f"{r['empty']:8.0f}"),
        ("floor: lock + append((time.time(), v))", f"{r['floor']:8.0f}"),
        ("prometheus_client labels(...).inc()", f"{r['labels']:8.0f}"),
        ("metricskit rec.record(name, v, 2 tags)", f"{r['record']:8.0f}"),
        ("ratio record / labels().inc()", f"{r['record'] / r['labels']:8.2f}x  (goal <= 0.5x)"),
        ("prometheus_client child.inc()", f"{r['child']:8.0f}"),
        ("metricskit bound handle.record(v)", f"{r['bound']:8.0f}"),
        ("ratio bound / child.inc()", f"{r['bound'] / r['child']:8.2f}x  (goal <= 1.0x)"),
        ("ratio bound / floor", f"{r['bound'] / r['floor']:8.2f}x"),
    ]
    for label, figure in rows:
        print(f"  {label:<42} {figure}")

    # record_many: float seconds (the usual input) and datetime64 timestamps.
    values = np.random.default_rng(0).random(many)
    secs = 1_732_752_000 + np.arange(many) * 0.001
    dt64 = (secs * 1e9).astype("datetime64[ns]")
    for label, ts in (("float seconds", secs), ("datetime64[ns]", dt64)):
        best = float("inf")
        for _ in range(repeat):
            t = time.process_time()
            rec.record_many("bench.many.samples", values, ts)
            best = min(best, time.process_time() - t)
            rec.flush()
        print(f"  record_many, {label:<15} {many / best / 1e6:10.1f} M samples/s  (goal >= 20M/s)")

    # Flush: 100 series of n/100 samples each, recorded one by one, then one flush.
    handles = [rec.bind("bench.flush.samples", {"series": str(i)}) for i in range(100)]
    best = float("inf")
    for r in range(repeat):
        base = 1_732_752_000 + r * n
        for j in range(n):
            handles[j % 100].record(1.0, base + j)
        t = time.process_time_ns()
        rec.flush()
        best = min(best, (time.process_time_ns() - t) / n)
    print(f"  flush (pairs -> numpy -> memory store)    {best:8.0f} ns/sample")
    rec.close()


if __name__ == "__main__":
    main()
