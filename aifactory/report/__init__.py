"""Benchmark reports: one self-contained HTML page (inline SVG, no script) per results folder.

Public API: :func:`build_report` (one results folder), :func:`build_experiment_report`
(several workloads on one page), :func:`report_command` (the ``bench report`` CLI entry) and
:class:`ReportError`. Input is what :mod:`aifactory.loadgen.results` writes.
"""

from aifactory.report.build import REPORT_FILE, build_experiment_report, build_report
from aifactory.report.cli import report_command
from aifactory.report.load import ReportError

__all__ = [
    "REPORT_FILE",
    "ReportError",
    "build_experiment_report",
    "build_report",
    "report_command",
]
