"""The results directory: what a benchmark leaves behind, in a stable, documented shape.

``<out>/summary.json``  :class:`BenchSummary` (``schema_version`` 1): config, state, one
                        :class:`RunSummary` per run/sweep stage with every distribution.
``<out>/summary.csv``   one row per run: the headline figures, flattened (``ttft_ms_p50``...).
``<out>/records.jsonl`` one :class:`RequestRecord` per line, every request including warmup
                        and failures, so any statistic can be recomputed exactly.
A report generator reads these with :func:`read_summary` / :func:`read_records`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from aifactory.loadgen.metrics.operations import operation_csv
from aifactory.loadgen.metrics.records import RECORD_ADAPTER, RequestRecord
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import PERCENTILES, BenchSummary, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

SUMMARY_FILE = "summary.json"
CSV_FILE = "summary.csv"
RECORDS_FILE = "records.jsonl"

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
    """What :func:`run_benchmark` returns: the summary and every request record."""

    summary: BenchSummary
    records: list[RequestRecord] = field(default_factory=list)


def assemble_result(
    config: BenchConfig,
    runs: list[RunSummary],
    records: list[RequestRecord],
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
    return BenchResult(summary=summary, records=records)


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
    """Write summary JSON, CSV and records JSONL under ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / SUMMARY_FILE,
        "csv": out_dir / CSV_FILE,
        "records": out_dir / RECORDS_FILE,
    }
    paths["summary"].write_text(result.summary.model_dump_json(indent=2) + "\n")
    with paths["records"].open("wb") as fh:
        for rec in result.records:
            fh.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
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


def read_records(path: Path) -> list[RequestRecord]:
    """Every record of a ``records.jsonl`` file, validated."""
    with path.open("rb") as fh:
        return [RECORD_ADAPTER.validate_json(line) for line in fh if line.strip()]
