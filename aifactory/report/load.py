"""Read a results folder (``summary.json`` + ``records.parquet``) into what the report needs.

The load generator owns the file shapes (:mod:`aifactory.loadgen.results`); this module
only finds the files and reads each run's chart columns, so the rest of the report never
touches paths. A missing records file is not fatal: the report then shows the summary's
numbers and says the per-request charts are unavailable (a summary is still worth sharing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from aifactory.loadgen.results import RECORDS_FILE, SUMMARY_FILE, read_summary
from aifactory.monitor.window import SERVER_METRICS_FILE, Row, read_rows
from aifactory.report.points import RunPoints, load_points
from aifactory.shared.results import BenchSummary


class ReportError(Exception):
    """The input cannot be turned into a report (missing or unreadable summary)."""


@dataclass
class LoadedResults:
    """One results folder: the summary, every record grouped by run, and load notes."""

    directory: Path
    summary: BenchSummary
    points: dict[int, RunPoints] = field(default_factory=dict)
    has_records: bool = False
    #: The records file, when it is there and readable (charts read their columns from it).
    records_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: The monitor's samples of the benchmark's window (``server_metrics.jsonl``), if any.
    server_rows: list[Row] | None = None


def is_results_dir(path: Path) -> bool:
    return (path / SUMMARY_FILE).is_file()


def load_results(results_dir: Path) -> LoadedResults:
    """Load ``results_dir``; raises :class:`ReportError` when there is no usable summary."""
    summary_path = results_dir / SUMMARY_FILE
    if not summary_path.is_file():
        raise ReportError(f"{results_dir}: no {SUMMARY_FILE} (not a benchmark results folder)")
    try:
        summary = read_summary(summary_path)
    except ValueError as exc:  # pydantic's ValidationError and JSON errors are ValueErrors
        raise ReportError(f"{summary_path}: unreadable summary: {exc}") from exc
    loaded = LoadedResults(directory=results_dir, summary=summary)
    server_path = results_dir / SERVER_METRICS_FILE
    if server_path.is_file():
        try:
            loaded.server_rows = read_rows(server_path)
        except ValueError as exc:
            loaded.notes.append(f"{SERVER_METRICS_FILE} is unreadable ({exc}).")
    records_path = results_dir / RECORDS_FILE
    if not records_path.is_file():
        loaded.notes.append(f"{RECORDS_FILE} is missing: per-request charts are not available.")
        return loaded
    try:
        loaded.points = {r.run_index: load_points(records_path, r.run_index) for r in summary.runs}
    except (OSError, pa.ArrowException) as exc:
        loaded.notes.append(f"{RECORDS_FILE} is unreadable ({exc}); charts are not available.")
        return loaded
    loaded.has_records = True
    loaded.records_path = records_path
    return loaded
