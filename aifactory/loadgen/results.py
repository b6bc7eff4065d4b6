"""The results directory: what a benchmark leaves behind, in a stable, documented shape.

``<out>/summary.json``  :class:`BenchSummary` (``schema_version`` 1): config, state, one
                        :class:`RunSummary` per run/sweep stage with every distribution.
``<out>/summary.csv``   one row per run: the headline figures, flattened (``ttft_ms_p50``...).
``<out>/records.parquet`` one row per request (the fields of :class:`RequestRecord`), every
                        request including warmup and failures, so any statistic can be
                        recomputed exactly; written while the run goes, never held in memory.
A report generator reads these with :func:`read_summary` / :func:`read_records` (an Arrow
table: ``read_records(path).to_pandas()``, ``polars.from_arrow(read_records(path))``);
``aifactory bench export`` writes ``records.jsonl`` or ``records.csv`` on request.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from aifactory.loadgen.metrics.operations import operation_csv
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.store import (
    ITL_COLUMN,
    RECORDS_PARQUET,
    SCHEMA,
    iter_batches,
    iter_records,
    read_table,
)
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import PERCENTILES, BenchSummary, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

SUMMARY_FILE = "summary.json"
CSV_FILE = "summary.csv"
RECORDS_FILE = RECORDS_PARQUET
JSONL_FILE = "records.jsonl"

#: Distributions flattened into the CSV, and the statistics taken from each.
_CSV_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "schedule_delay_ms")
_CSV_STATS = ("mean", "std", "min", "max", *PERCENTILES)
_CSV_SCALARS = (
    "run_index",
    "label",
    "loop",
    "requested_rate",
    "concurrency",
    "workers",
    "state",
    "requests_sent",
    "requests_ok",
    "requests_failed",
    "warmup_excluded",
    "duration_s",
    "achieved_rate",
    "request_throughput",
    "output_token_throughput",
    "total_token_throughput",
    "goodput",
    "in_flight_cap_hits",
    "cpu_ms_per_request",
    "preemptions",
)


@dataclass
class BenchResult:
    """What :func:`run_benchmark` returns: the summary and the file of every record."""

    summary: BenchSummary
    records_path: Path

    @property
    def records(self) -> list[RequestRecord]:
        """Every record as an object: for small runs (a million records is ~1 GB this way;
        use :func:`read_records` for an Arrow table, or :func:`iter_records`)."""
        return list(iter_records(self.records_path))


def assemble_result(
    config: BenchConfig,
    runs: list[RunSummary],
    records_path: Path,
    *,
    started_at: datetime,
    cancelled: bool,
) -> BenchResult:
    """The finished benchmark, the same way whether its workers were local or remote."""
    summary = BenchSummary(
        state=BenchState.CANCELLED if cancelled else BenchState.COMPLETED,
        target=config.target,
        backend=config.backend,
        model=config.model,
        config=config,
        started_at=started_at,
        finished_at=utcnow(),
        runs=runs,
    )
    return BenchResult(summary=summary, records_path=records_path)


def csv_row(run: RunSummary) -> dict[str, object]:
    row: dict[str, object] = {k: getattr(run, k) for k in _CSV_SCALARS}
    for metric in _CSV_METRICS:
        dist = getattr(run, metric)
        for stat in _CSV_STATS:
            row[f"{metric}_{stat}"] = getattr(dist, stat)
    row["failures"] = ";".join(f"{k}={v}" for k, v in run.failures.items())
    row.update(operation_csv(run.operations))
    return row


def write_results(result: BenchResult, out_dir: Path) -> dict[str, Path]:
    """Write summary JSON and CSV under ``out_dir`` (created if needed), with the records
    file (moved there if the run wrote it elsewhere)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / SUMMARY_FILE,
        "csv": out_dir / CSV_FILE,
        "records": out_dir / RECORDS_FILE,
    }
    paths["summary"].write_text(result.summary.model_dump_json(indent=2) + "\n")
    if result.records_path.resolve() != paths["records"].resolve():
        shutil.move(result.records_path, paths["records"])
        result.records_path = paths["records"]
    rows = [csv_row(run) for run in result.summary.runs]
    with paths["csv"].open("w", newline="") as fh:
        if rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))  # stages may differ
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return paths


def read_summary(path: Path) -> BenchSummary:
    return BenchSummary.model_validate_json(path.read_bytes())


def read_records(path: Path) -> pa.Table:
    """Every record of a ``records.parquet`` file as an Arrow table (``.to_pandas()``)."""
    return read_table(path)


def export_records(path: Path, out: Path, fmt: str) -> int:
    """Write the records of ``path`` as JSON lines (``jsonl``) or CSV (``csv``), streamed
    one row group at a time; returns how many were written."""
    count = 0
    if fmt == "jsonl":
        with out.open("wb") as fh:
            for rec in iter_records(path):
                fh.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
                count += 1
        return count
    if fmt == "csv":
        with pacsv.CSVWriter(out, _csv_schema()) as writer:
            for batch in iter_batches(path, SCHEMA.names):
                flat = batch.set_column(
                    batch.schema.get_field_index(ITL_COLUMN),
                    ITL_COLUMN,
                    pc.binary_join(pc.cast(batch.column(ITL_COLUMN), pa.list_(pa.string())), " "),
                )
                writer.write(flat.cast(_csv_schema()))
                count += batch.num_rows
        return count
    raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")


def _csv_schema() -> pa.Schema:
    """CSV cannot hold lists: the microsecond gaps as one space-separated string."""
    fields = [pa.field(f.name, pa.string()) if f.name == ITL_COLUMN else f for f in SCHEMA]
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in fields
        ]
    )
