"""Per-request values of a run's vector operations, from the records file, in bounded memory.

The vector charts' counterpart of :mod:`aifactory.report.points`: only the columns the
charts draw are read, for one run and the search/upsert rows only (Parquet filters skip
the rest), as numpy arrays, never as record objects. What reaches a figure is reduced
further by the chart (CDF quantiles, a thinned ingest curve).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aifactory.report.points import F64
from aifactory.shared.results import Operation

COLUMNS = ["run_index", "warmup", "error", "operation", "t0_s", "end_s", "e2e_ms", "recall", "rows"]


@dataclass(frozen=True)
class OperationPoints:
    """One run's successful searches and upserts.

    Latencies and recalls are those of measured requests (the summary's); the ingest curve
    counts every acknowledged upsert, warmup included (those rows are in the database too):
    ``ingest_at`` seconds since the first of them was sent, in response order, and
    ``ingest_rows`` the rows written up to each.
    """

    search_latency: F64
    upsert_latency: F64
    recall: F64
    ingest_at: F64
    ingest_rows: F64


def _floats(table: pa.Table, name: str) -> F64:
    column = pc.fill_null(table.column(name).cast(pa.float64()), np.nan)
    return np.asarray(column.to_numpy(), dtype=np.float64)


def _mask(array: pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _present(values: F64) -> F64:
    return values[~np.isnan(values)]


def load_operation_points(path: Path, run_index: int) -> OperationPoints:
    table = pq.read_table(
        path,
        columns=COLUMNS,
        filters=[
            ("run_index", "==", run_index),
            ("operation", "in", [Operation.SEARCH.value, Operation.UPSERT.value]),
        ],
    )
    ok = _mask(table.column("error").is_null())
    measured = ok & ~_mask(table.column("warmup"))
    op = table.column("operation").cast(pa.string())
    search = _mask(pc.equal(op, Operation.SEARCH.value))
    upsert = _mask(pc.equal(op, Operation.UPSERT.value))
    e2e = _floats(table, "e2e_ms")
    written = ok & upsert
    ends, starts = _floats(table, "end_s")[written], _floats(table, "t0_s")[written]
    order = np.argsort(ends, kind="stable")
    rows = np.nan_to_num(_floats(table, "rows")[written][order], nan=0.0)
    return OperationPoints(
        search_latency=_present(e2e[measured & search]),
        upsert_latency=_present(e2e[measured & upsert]),
        recall=_present(_floats(table, "recall")[measured & search]),
        ingest_at=ends[order] - float(starts.min()) if starts.size else np.empty(0),
        ingest_rows=np.cumsum(rows),
    )
