"""Per-request values for the charts, from the records file, in bounded memory.

Only the columns a chart draws are read, one run at a time (row groups of other runs are
skipped by their statistics), as numpy arrays; what reaches a figure is thinned (scatter)
or reduced to evenly spaced exact quantiles (CDF), so a report of any run length stays
small (a few MB) and is built without holding the run's records as objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

F64 = npt.NDArray[np.float64]
COLUMNS = ["run_index", "warmup", "error", "t0_s", "end_s", "ttft_ms", "tpot_ms", "e2e_ms"]


@dataclass(frozen=True)
class RunPoints:
    """One run's successful, measured requests in send order (NaN where a value is absent),
    and the end of its last request of any kind (for laying runs end to end)."""

    t0: F64
    ttft: F64
    tpot: F64
    e2e: F64
    end_max: float


def _column(table: pa.Table, name: str) -> F64:
    column = pc.fill_null(table.column(name).cast("float64"), math.nan)
    return np.asarray(column.to_numpy(), dtype=np.float64)


def load_points(path: Path, run_index: int) -> RunPoints:
    table = pq.read_table(path, columns=COLUMNS, filters=[("run_index", "==", run_index)])
    end = _column(table, "end_s")
    good = ~np.asarray(table.column("warmup").to_numpy(zero_copy_only=False), dtype=bool)
    good &= np.asarray(table.column("error").is_null().to_numpy(zero_copy_only=False), dtype=bool)
    t0 = _column(table, "t0_s")[good]
    order = np.argsort(t0, kind="stable")
    return RunPoints(
        t0=t0[order],
        ttft=_column(table, "ttft_ms")[good][order],
        tpot=_column(table, "tpot_ms")[good][order],
        e2e=_column(table, "e2e_ms")[good][order],
        end_max=float(end.max()) if end.size else 0.0,
    )


def type7(sorted_values: F64, q: float) -> float:
    """The ``q`` quantile of sorted values, as the summary computes percentiles."""
    n = sorted_values.size
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    low = float(sorted_values[lo])
    return low + (h - lo) * (float(sorted_values[hi]) - low)


def cdf_points(values: F64, limit: int) -> tuple[list[float], list[float]]:
    """Empirical CDF; beyond ``limit`` values, ``limit`` evenly spaced exact quantiles (so
    the curve passes through the table's p50/p99)."""
    data = np.sort(values)
    n = data.size
    if n <= limit:
        return data.tolist(), [(k + 1) / n for k in range(n)]
    qs = [k / (limit - 1) for k in range(limit)]
    return [type7(data, q) for q in qs], qs


def thin(values: F64, limit: int, keep_slowest: int) -> npt.NDArray[np.intp]:
    """Indices of at most ``limit`` points (given in time order): the ``keep_slowest``
    slowest, the rest evenly spaced in time."""
    n = values.size
    if n <= limit:
        return np.arange(n)
    slow = np.argpartition(values, n - keep_slowest)[n - keep_slowest :]
    rest = np.setdiff1d(np.arange(n), slow, assume_unique=True)
    picks = rest[np.round(np.linspace(0, rest.size - 1, limit - keep_slowest)).astype(np.intp)]
    return np.union1d(slow, picks)
