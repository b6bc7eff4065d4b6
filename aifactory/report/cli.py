"""The entry point behind ``aifactory bench report ID|DIR``.

Kept free of Typer so the CLI layer only resolves a benchmark id to a folder and calls
:func:`report_command`; this module decides what a folder means: a results folder (with
``summary.json``) gets a single report, a folder whose sub-folders are results folders (an
experiment with several workloads) gets one page with a section per workload.
"""

from __future__ import annotations

from pathlib import Path

from aifactory.loadgen.results import SUMMARY_FILE
from aifactory.report.build import REPORT_FILE, build_experiment_report, build_report
from aifactory.report.load import ReportError, is_results_dir


def workload_dirs(folder: Path) -> list[tuple[str, Path]]:
    """The results folders directly under ``folder``, named after their directory."""
    return [(p.name, p) for p in sorted(folder.iterdir()) if p.is_dir() and is_results_dir(p)]


def report_command(target: Path, out: Path | None) -> Path:
    """Build the report for ``target`` (a results folder, its ``summary.json``, or a folder
    of results folders) and return the HTML file's path (default: inside ``target``)."""
    if target.is_file() and target.name == SUMMARY_FILE:
        target = target.parent
    if not target.is_dir():
        raise ReportError(f"{target}: no such results folder")
    if is_results_dir(target):
        return build_report(target, out)
    workloads = workload_dirs(target)
    if not workloads:
        raise ReportError(
            f"{target}: neither a results folder ({SUMMARY_FILE}) nor a folder of them"
        )
    return build_experiment_report(
        workloads, out if out is not None else target / REPORT_FILE, title=target.name
    )
