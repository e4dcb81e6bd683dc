"""The values an expression evaluates to, over every evaluation time at once.

An instant vector is a (series x times) array with a presence mask: PromQL's "no sample
at this time" is ``present == False``, distinct from a NaN value. A range vector keeps
each series' raw samples and the times its windows end at. Labels are sorted tuples of
``(name, value)`` pairs, ``__name__`` included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metricskit.errors import QueryError

__all__ = [
    "BOOL",
    "F64",
    "I64",
    "Labels",
    "RangeVector",
    "Scalar",
    "StringValue",
    "Vector",
    "drop_name",
    "labels_get",
    "merge",
]  # fmt: skip

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]
Labels = tuple[tuple[str, str], ...]

NAME = "__name__"


def labels_get(labels: Labels, key: str) -> str:
    """The value of ``key`` in ``labels``, ``""`` when absent (PromQL's convention)."""
    for k, v in labels:
        if k == key:
            return v
    return ""


def seconds(ns: I64) -> F64:
    """Nanoseconds as float seconds, rounded as Prometheus rounds its milliseconds.

    ``ns / 1e9`` rounds twice (int64 to float64, then the division) and can differ from
    Prometheus' ``ms / 1000`` in the last bits, which ``time() - timestamp(x)`` magnifies.
    """
    ms, rest = np.divmod(ns, 1_000_000)
    out: F64 = ms / 1000.0 + rest / 1e9
    return out


def drop_name(labels: Labels) -> Labels:
    """``labels`` without ``__name__``."""
    return tuple(kv for kv in labels if kv[0] != NAME)


@dataclass
class Vector:
    """An instant vector at every evaluation time: ``values[i, j]`` counts if ``present``."""

    labels: list[Labels]
    values: F64
    present: BOOL

    @classmethod
    def empty(cls, steps: int) -> Vector:
        """No series."""
        return cls([], np.empty((0, steps)), np.zeros((0, steps), dtype=bool))


@dataclass
class Scalar:
    """A scalar at every evaluation time."""

    values: F64


@dataclass
class StringValue:
    """A string literal."""

    value: str


@dataclass
class RangeVector:
    """Each series' samples and the window ``(t - range_ns, t]`` ending at each of ``times``.

    ``selector`` is the matrix selector's text when it is one (absent_over_time's labels).
    """

    labels: list[Labels]
    samples: list[tuple[I64, F64]]
    times: I64
    range_ns: int
    selector: object = None


Value = Vector | Scalar | StringValue | RangeVector


def merge(vector: Vector) -> Vector:
    """Join the rows sharing a label set; an overlap at one time is an error, as in PromQL."""
    index: dict[Labels, int] = {}
    for i, labels in enumerate(vector.labels):
        index.setdefault(labels, i)
    if len(index) == len(vector.labels):
        return vector
    rows = list(index.values())
    values = vector.values[rows].copy()
    present = vector.present[rows].copy()
    for i, labels in enumerate(vector.labels):
        j = rows.index(index[labels])
        if index[labels] == i:
            continue
        if (present[j] & vector.present[i]).any():
            text = "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"
            raise QueryError(f"vector cannot contain metrics with the same labelset {text}")
        values[j] = np.where(vector.present[i], vector.values[i], values[j])
        present[j] |= vector.present[i]
    return Vector([vector.labels[r] for r in rows], values, present)
