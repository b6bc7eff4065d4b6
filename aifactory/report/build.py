"""``build_report`` / ``build_experiment_report``: results folder(s) in, one HTML file out.

The page is rendered by Jinja2 with autoescaping on, so every string that comes from the data
(model names, stage labels, error messages, caller context) is escaped; the only markup not
escaped is matplotlib's SVG, vetted in :mod:`.charts`. The file is written atomically (temp
file + rename) so a reader never sees half a report, e.g. when it is served while rebuilt.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from aifactory.report import vectors, view
from aifactory.report.charts import Chart, workload_charts
from aifactory.report.load import LoadedResults, ReportError, load_results
from aifactory.report.logs import AlertRow, LogLink
from aifactory.report.server import ServerView, server_view
from aifactory.shared.results import BenchSummary, RunSummary
from aifactory.shared.states import BenchState

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class RunView:
    """One run (or sweep stage): its headline figures and statistics table."""

    run: RunSummary
    anchor: str
    heading: str
    key_numbers: list[view.KeyNumber]
    stats: list[view.StatRow]

    @property
    def incomplete(self) -> bool:
        return self.run.state is not BenchState.COMPLETED


@dataclass(frozen=True)
class WorkloadView:
    """One results folder as shown on the page."""

    anchor: str
    name: str | None
    summary: BenchSummary
    headline: str
    meta: list[tuple[str, str]]
    sweep: bool
    stages: list[view.StageRow]
    runs: list[RunView]
    charts: list[Chart]
    notes: list[str] = field(default_factory=list)
    config_json: str = ""
    server: ServerView | None = None


def headline(summary: BenchSummary) -> str:
    model = summary.model or "model n/a"
    return f"{model} · {summary.backend} · {view.profile_text(summary)} · {summary.target}"


def default_title(summary: BenchSummary) -> str:
    return f"Benchmark report: {summary.model or summary.target}"


def run_heading(run: RunSummary, sweep: bool) -> str:
    if not sweep:
        return "Results"
    return f"Stage {run.run_index}: {run.label} ({view.load_text(run)})"


def workload_view(anchor: str, name: str | None, loaded: LoadedResults) -> WorkloadView:
    summary = loaded.summary
    sweep = view.is_sweep(summary)
    vector = vectors.has_vectors(summary.runs)
    runs = [
        RunView(
            run=run,
            anchor=f"{anchor}-run{run.run_index}",
            heading=run_heading(run, sweep),
            key_numbers=_key_numbers(run, vector),
            stats=_stat_rows(run, vector),
        )
        for run in summary.runs
    ]
    notes = list(loaded.notes)
    if summary.state is not BenchState.COMPLETED:
        notes.append(f"The benchmark ended in state '{summary.state.value}': figures are partial.")
    if not summary.runs:
        notes.append("The summary holds no run.")
    charts: list[Chart] = []
    if loaded.records_path is not None:
        if vector:
            charts = vectors.vector_charts(anchor, summary.runs, loaded.records_path)
        else:
            charts = workload_charts(anchor, summary.runs, loaded.points)
    return WorkloadView(
        anchor=anchor,
        name=name,
        summary=summary,
        headline=headline(summary),
        meta=view.meta_rows(summary),
        sweep=sweep,
        stages=view.stage_rows(summary) if sweep else [],
        runs=runs,
        charts=charts,
        notes=notes,
        config_json=view.config_json(summary),
        server=server_view(anchor, summary.runs, loaded.points, loaded.server_rows),
    )


#: Token figures, meaningless for vector operations: left out of their runs' key numbers.
_TOKEN_KEYS = frozenset({"output_token_throughput", "total_token_throughput"})
_TOKEN_STATS = frozenset({"TTFT", "TPOT", "ITL"})


def _key_numbers(run: RunSummary, vector: bool) -> list[view.KeyNumber]:
    numbers = view.key_numbers(run)
    if not vector:
        return numbers
    return [k for k in numbers if k.key not in _TOKEN_KEYS] + vectors.key_numbers(run)


def _stat_rows(run: RunSummary, vector: bool) -> list[view.StatRow]:
    rows = view.stat_rows(run)
    if not vector:
        return rows
    return [r for r in rows if r.name not in _TOKEN_STATS] + vectors.stat_rows(run)


@cache
def environment() -> jinja2.Environment:
    """HTML environment: autoescape on for every template, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(
    title: str,
    workloads: Sequence[WorkloadView],
    extra: Mapping[str, Any] | None,
    *,
    experiment: bool,
    logs: Sequence[LogLink] = (),
    alerts: Sequence[AlertRow] = (),
) -> str:
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            workloads=workloads,
            experiment=experiment,
            setup=view.setup_rows(extra),
            stat_columns=[header for _, header in view.STAT_COLUMNS],
            stage_columns=view.STAGE_COLUMNS,
            fmt=view.fmt_value,
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            logs=logs,
            alerts=alerts,
        )
    )


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(out: Path) -> Path:
    return out / REPORT_FILE if out.is_dir() else out


def build_report(
    results_dir: Path,
    out: Path | None = None,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the HTML report of one results folder; returns its path.

    ``out`` defaults to ``results_dir/report.html`` (a directory gets ``report.html`` in it);
    ``extra`` is caller context (recipe, service id, endpoints, versions) shown as "Setup".
    """
    loaded = load_results(results_dir)
    target = _target(out if out is not None else results_dir)
    page = render_page(
        title or default_title(loaded.summary),
        [workload_view("w0", None, loaded)],
        extra,
        experiment=False,
    )
    write_atomic(target, page)
    return target


def build_experiment_report(
    workload_dirs: Sequence[tuple[str, Path]],
    out: Path,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    logs: Sequence[LogLink] = (),
    alerts: Sequence[AlertRow] = (),
) -> Path:
    """One HTML page for an experiment with several workloads (one section each), and
    links to the jobs' logs with the alerts found in them."""
    if not workload_dirs:
        raise ReportError("an experiment report needs at least one workload results folder")
    workloads = [
        workload_view(f"w{i}", name, load_results(path))
        for i, (name, path) in enumerate(workload_dirs)
    ]
    target = _target(out)
    page = render_page(
        title or "Experiment report", workloads, extra, experiment=True, logs=logs, alerts=alerts
    )
    write_atomic(target, page)
    return target
