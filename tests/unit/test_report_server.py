"""The report's "Server and GPU" section, from hand-made server samples."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from aifactory.loadgen.results import SUMMARY_FILE
from aifactory.monitor.benchmark import spans_of, with_server_side
from aifactory.monitor.window import SERVER_METRICS_FILE, write_rows
from aifactory.report import build_report
from aifactory.report.points import RunPoints
from aifactory.report.server import TimeAxis
from tests.unit.test_monitor_figures import T0, rows
from tests.unit.test_report import (
    HOSTILE,
    assert_self_contained,
    poisson_plan,
    run_records,
    value_of,
    write_folder,
)


def folder_with_server_side(
    tmp_path: Path, *, keep_rows: bool = True, gpus: bool = True, vllm: bool = True
) -> Path:
    folder = tmp_path / "res"
    records = run_records(0)
    summary = write_folder(folder, [poisson_plan()], records)
    started = datetime.fromtimestamp(T0 + 9.5, UTC)
    runs = [summary.runs[0].model_copy(update={"started_at": started})]
    samples = [
        replace(r, labels={**r.labels, "Hostname": HOSTILE}) if "gpu" in r.labels else r
        for r in rows()
        if (gpus or "gpu" not in r.labels) and (vllm or not r.metric.startswith("vllm:"))
    ]
    summary = with_server_side(
        summary.model_copy(update={"runs": runs}), spans_of(records), samples
    )
    (folder / SUMMARY_FILE).write_text(summary.model_dump_json(indent=2))
    if keep_rows:
        write_rows(folder / SERVER_METRICS_FILE, samples)
    return folder


def test_the_section_shows_aggregates_and_charts_on_the_client_axis(tmp_path: Path) -> None:
    html = build_report(folder_with_server_side(tmp_path)).read_text()
    assert_self_contained(html)
    assert "<h3>Server and GPU</h3>" in html
    assert value_of(html, "server.gpu_util_max") == "90.0"
    assert value_of(html, "server.client_output_tokens") == repr(40 * 8)  # warmup included
    assert value_of(html, "server.kv_cache_usage_max") == "0.1"
    assert "10.0" in html  # the KV peak, shown in percent
    assert html.count("<svg") == 4  # the client's two, then server and GPU/node
    assert 'id="w0-server"' in html and 'id="w0-gpu-node"' in html
    assert HOSTILE not in html


def test_a_service_without_gpus_still_gets_its_charts(tmp_path: Path) -> None:
    # A CPU-only server (no DCGM series): the GPU panel says "no data", nothing fails.
    html = build_report(folder_with_server_side(tmp_path, gpus=False)).read_text()
    assert html.count("<svg") == 4 and 'id="w0-gpu-node"' in html
    assert "no data" in html


def test_a_server_without_vllm_series_gets_no_empty_serving_chart(tmp_path: Path) -> None:
    """A vector database (or any non-vLLM service): GPUs and nodes only, and no crash."""
    html = build_report(folder_with_server_side(tmp_path, vllm=False)).read_text()
    assert "<h3>Server and GPU</h3>" in html
    assert 'id="w0-server"' not in html and 'id="w0-gpu-node"' in html


def test_aggregates_without_the_samples_file_still_show(tmp_path: Path) -> None:
    html = build_report(folder_with_server_side(tmp_path, keep_rows=False)).read_text()
    assert "<h3>Server and GPU</h3>" in html and "server_metrics.jsonl is missing" in html
    assert html.count("<svg") == 2


def test_no_server_side_no_section(tmp_path: Path) -> None:
    folder = tmp_path / "res"
    write_folder(folder, [poisson_plan()], run_records(0))
    assert "Server and GPU" not in build_report(folder).read_text()


def test_time_axis_lays_runs_end_to_end() -> None:
    from aifactory.shared.results import RunSummary

    def run(index: int, start: float) -> RunSummary:
        return RunSummary.model_construct(
            run_index=index, started_at=datetime.fromtimestamp(start, UTC)
        )

    length = max(r.end_s for r in run_records(0))
    assert length == max(r.end_s for r in run_records(1))
    empty = np.empty(0)
    points = {k: RunPoints(empty, empty, empty, empty, end_max=length) for k in (0, 1)}
    axis = TimeAxis([run(0, 100.0), run(1, 200.0)], points)
    assert axis.x(100.5) == 0.5
    assert axis.x(200.5) == pytest.approx(length + 0.5)
    assert axis.x(97.0) == -3.0  # a little context before the first run
    assert axis.x(150.0) is None  # between stages: not on the axis
    assert axis.x(200.0 + length + 3) == pytest.approx(2 * length + 3)  # after the last run
