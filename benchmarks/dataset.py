"""The reference benchmark dataset, bit for bit the same as ``shared/bench/gen_dataset.py``.

1,000 series x 10,000 points at 10 s from ``T0`` (2026-11-19T00:00:00Z): the first half are
2-decimal random-walk gauges (``bench_gauge``), the second half monotonic integer counters
(``bench_counter_total``); labels ``series``, ``x`` (10 groups) and ``job``. The values come
from one ``random.Random(seed)`` consumed in exactly the reference generator's order, so
they cannot be vectorised; :func:`arrays` caches the result as ``.npy`` when asked to.

    for name, labels, values in series_iter(): ...  # exactly like the reference
    data = arrays()                              # numpy: data.values[i], data.timestamps_ns
    batch = data.batch()                         # list[metricskit.Series]
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

N_SERIES = 1000
N_POINTS = 10_000
STEP_S = 10
T0 = 1795046400
SEED = 42

__all__ = ["N_POINTS", "N_SERIES", "SEED", "STEP_S", "T0", "Dataset", "arrays", "series_iter"]


def series_iter(
    n_series: int = N_SERIES, n_points: int = N_POINTS, seed: int = SEED
) -> Iterator[tuple[str, dict[str, str], list[float] | list[int]]]:
    """Yield ``(name, labels, values)`` per series, identical to the reference generator.

    Gauge values are floats, counter values Python ints, as in the reference.
    """
    rnd = random.Random(seed)
    half = n_series // 2
    for i in range(n_series):
        labels_x = f"group{i % 10}"
        if i < half:
            uniform, gauss = rnd.uniform, rnd.gauss
            v = round(uniform(0, 100), 2)
            gvals: list[float] = []
            append = gvals.append
            for _ in range(n_points):
                v = round(v + gauss(0, 0.5), 2)
                append(v)
            yield "bench_gauge", {"series": f"g{i:04d}", "x": labels_x, "job": "bench"}, gvals
        else:
            c = rnd.randint(0, 1_000_000)
            rate = rnd.uniform(1, 50)
            expo = rnd.expovariate
            lam = 1 / rate
            cvals: list[int] = []
            cappend = cvals.append
            for _ in range(n_points):
                c += int(expo(lam) * 10)
                cappend(c)
            yield (
                "bench_counter_total",
                {"series": f"c{i:04d}", "x": labels_x, "job": "bench"},
                cvals,
            )


@dataclass(frozen=True)
class Dataset:
    """The dataset as numpy: ``values[i]`` is series ``i``, all sharing ``timestamps_ns``."""

    names: list[str]
    labels: list[dict[str, str]]
    values: npt.NDArray[np.float64]
    timestamps_ns: npt.NDArray[np.int64]

    @property
    def n_samples(self) -> int:
        """Total samples (series x points)."""
        return int(self.values.size)

    def gauge_rows(self) -> npt.NDArray[np.bool_]:
        """A mask over series: True for the gauges."""
        return np.array([n == "bench_gauge" for n in self.names])

    def batch(self) -> list[object]:
        """The whole dataset as a list of :class:`metricskit.Series` (one per series)."""
        from metricskit.model import Series, SeriesKey

        return [
            Series(SeriesKey.of(name, labels), self.timestamps_ns, self.values[i])
            for i, (name, labels) in enumerate(zip(self.names, self.labels, strict=True))
        ]


def timestamps_ns(
    n_points: int = N_POINTS, step_s: int = STEP_S, t0: int = T0
) -> npt.NDArray[np.int64]:
    """The shared timestamps, int64 nanoseconds."""
    return (t0 + np.arange(n_points, dtype=np.int64) * step_s) * 1_000_000_000


def arrays(
    n_series: int = N_SERIES,
    n_points: int = N_POINTS,
    seed: int = SEED,
    *,
    cache_dir: Path | str | None = None,
) -> Dataset:
    """Return the dataset as numpy arrays; with ``cache_dir``, reuse/write an ``.npy`` cache."""
    names = ["bench_gauge" if i < n_series // 2 else "bench_counter_total" for i in range(n_series)]
    labels = [
        {
            "series": f"{'g' if i < n_series // 2 else 'c'}{i:04d}",
            "x": f"group{i % 10}",
            "job": "bench",
        }
        for i in range(n_series)
    ]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"bench-{n_series}x{n_points}-s{seed}.npy"
        if cache.exists():
            values = np.load(cache)
            return Dataset(names, labels, values, timestamps_ns(n_points))
    values = np.empty((n_series, n_points), dtype=np.float64)
    for i, (_, _, vals) in enumerate(series_iter(n_series, n_points, seed)):
        values[i] = vals
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, values)
        tmp.replace(cache)
    return Dataset(names, labels, values, timestamps_ns(n_points))
