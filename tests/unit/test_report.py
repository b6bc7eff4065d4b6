"""HTML reports from hand-made results folders: numbers, escaping, self-containment, charts."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.summary import summarize_run
from aifactory.loadgen.results import RECORDS_FILE, BenchResult, write_results
from aifactory.loadgen.scheduler import RunPlan
from aifactory.loadgen.store import write_records
from aifactory.report import (
    ReportError,
    build_experiment_report,
    build_report,
    report_command,
)
from aifactory.report.charts import (
    KEEP_SLOWEST,
    MAX_SCATTER_POINTS,
    clean_svg,
    series_for,
)
from aifactory.report.points import load_points, thin
from aifactory.report.view import fmt_value, setup_rows
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import BenchSummary, ErrorType, LoopKind, RunSummary, TokenSource
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig, SloConfig

HOSTILE = "<script>alert(1)</script>"


def ok(run: int, i: int, t0: float, ttft: float, *, warmup: bool = False) -> RequestRecord:
    n = 8
    e2e = ttft + 7 * 2.0
    return RequestRecord(
        run_index=run,
        worker_id=0,
        request_index=i,
        prompt_index=i,
        warmup=warmup,
        scheduled_s=t0 - 0.002,
        t0_s=t0,
        end_s=t0 + e2e / 1000,
        ttft_ms=ttft,
        e2e_ms=e2e,
        tpot_ms=2.0,
        itl_ms=[2.0] * (n - 1),
        chunks=n,
        output_tokens=n,
        output_tokens_source=TokenSource.USAGE,
        prompt_tokens=4,
        prompt_tokens_source=TokenSource.USAGE,
        http_status=200,
    )


def failed(run: int, i: int, t0: float, error: ErrorType) -> RequestRecord:
    return RequestRecord(
        run_index=run,
        worker_id=0,
        request_index=i,
        prompt_index=i,
        warmup=False,
        scheduled_s=t0,
        t0_s=t0,
        end_s=t0 + 0.01,
        error=error,
        error_message=HOSTILE,
    )


def worker_report(run: int) -> WorkerReport:
    return WorkerReport(
        worker_id=0,
        run_index=run,
        sent=1,
        completed=1,
        cap_hits=0,
        max_in_flight=1,
        stop_reason="requests",
        cancelled=False,
        cpu_s=0.01,
        wall_s=1.0,
        pid=1,
    )


def run_records(run: int, n: int = 40) -> list[RequestRecord]:
    recs = [ok(run, 0, 0.0, 5000.0, warmup=True)]  # huge but warmup: must stay out
    recs += [ok(run, i, 0.05 * i, 20.0 + (i % 7)) for i in range(1, n)]
    recs += [
        failed(run, n, 0.05 * n, ErrorType.HTTP_5XX),
        failed(run, n + 1, 0.05 * n, ErrorType.HTTP_5XX),
        failed(run, n + 2, 0.05 * n, ErrorType.STREAM_CUT),
    ]
    return recs


def write_folder(
    path: Path,
    plans: list[RunPlan],
    records: list[RequestRecord],
    *,
    model: str = "m",
    slo: SloConfig | None = None,
    profile: str = "poisson",
    state: BenchState = BenchState.COMPLETED,
) -> BenchSummary:
    slo = slo or SloConfig()
    runs: list[RunSummary] = [
        summarize_run(
            plan,
            [r for r in records if r.run_index == plan.run_index],
            [worker_report(plan.run_index)],
            slo,
            state=state,
        )
        for plan in plans
    ]
    extra = {"rate": 20.0} if profile == "poisson" else {}
    config = BenchConfig(
        target="http://sim:1", model=model, profile=profile, requests=40, slo=slo, **extra
    )
    summary = BenchSummary(
        state=state,
        target="http://sim:1",
        backend="openai_completions",
        model=model,
        config=config,
        started_at=utcnow(),
        finished_at=utcnow(),
        runs=runs,
    )
    stored = write_records(records, path.parent / f".{path.name}-records.parquet")
    write_results(BenchResult(summary=summary, records_path=stored), path)
    return summary


def poisson_plan(run: int = 0, rate: float = 20.0, label: str = "poisson@20") -> RunPlan:
    return RunPlan(
        run_index=run, label=label, loop=LoopKind.POISSON, rate=rate, max_seconds=60,
        max_in_flight=8,
    )  # fmt: skip


def value_of(html: str, metric: str) -> str:
    match = re.search(rf'data-metric="{re.escape(metric)}" data-value="([^"]*)"', html)
    assert match, metric
    return match.group(1)


def assert_self_contained(html: str) -> None:
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert not re.search(r"<\s*link\b", html, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html)


def test_single_run_report(tmp_path: Path) -> None:
    folder = tmp_path / "res"
    slo = SloConfig(ttft_ms=23.5)
    summary = write_folder(folder, [poisson_plan()], run_records(0), model=HOSTILE, slo=slo)
    extra = {"recipe": "vllm-small", "service": {"id": HOSTILE, "endpoints": ["http://n1:8000"]}}
    path = build_report(folder, extra=extra)
    assert path == folder / "report.html"
    html = path.read_text()
    assert_self_contained(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    run = summary.runs[0]
    for key in (
        "requests_ok",
        "requests_failed",
        "warmup_excluded",
        "duration_s",
        "request_throughput",
        "output_token_throughput",
        "total_token_throughput",
        "goodput",
        "requested_rate",
        "achieved_rate",
    ):
        value = getattr(run, key)
        assert value is not None, key
        assert value_of(html, key) == repr(value)
        assert fmt_value(value) in html
    assert value_of(html, "schedule_delay_p99") == repr(run.schedule_delay_ms.p99)
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "schedule_delay_ms"):
        for stat in ("mean", "std", "min", "p50", "p90", "p95", "p99", "p99_9", "max"):
            assert value_of(html, f"{metric}.{stat}") == repr(getattr(getattr(run, metric), stat))
    assert run.requests_failed == 3 and run.warmup_excluded == 1
    assert "http_5xx 2, stream_cut 1" in html
    assert html.count("<svg") == 2  # CDFs and over-time
    assert '<th scope="row">service.endpoints</th><td>http://n1:8000</td>' in html
    assert '<th scope="row">recipe</th>' in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)


def test_charts_exclude_failures_and_warmup(tmp_path: Path) -> None:
    recs = run_records(0)
    summary = write_folder(tmp_path / "r", [poisson_plan()], recs)
    points = {0: load_points(tmp_path / "r" / RECORDS_FILE, 0)}
    series = series_for(summary.runs, points)
    assert series[0].ttft.size == 39 and series[0].ttft.max() < 100
    assert (series[0].ttft_at[1] < 100).all()


def test_sweep_report_has_stage_table_and_sweep_charts(tmp_path: Path) -> None:
    plans = [
        RunPlan(run_index=0, label="synchronous", loop=LoopKind.CLOSED, concurrency=1,
                max_seconds=60, max_in_flight=8),
        RunPlan(run_index=1, label="concurrency@8", loop=LoopKind.CLOSED, concurrency=8,
                max_seconds=60, max_in_flight=8),
        poisson_plan(2, 30.0, "poisson@30 $x$ <b>"),
    ]  # fmt: skip
    recs = [r for k in range(3) for r in run_records(k)]
    summary = write_folder(tmp_path / "s", plans, recs, profile="sweep")
    html = build_report(tmp_path / "s", tmp_path / "out.html").read_text()
    assert_self_contained(html)
    assert html.count("<svg") == 4
    assert "Sweep: throughput" in html and "Sweep: latency against rate" in html
    assert "poisson@30 $x$ &lt;b&gt;" in html and "<b>" not in html
    for run in summary.runs:
        assert f'<tr data-run="{run.run_index}">' in html
    assert "stages laid end to end" in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_thinning_keeps_slowest_and_caps_points(tmp_path: Path) -> None:
    values = np.ones(20_000)
    values[12_345] = 99.0
    kept = thin(values, MAX_SCATTER_POINTS, KEEP_SLOWEST)
    assert kept.size == MAX_SCATTER_POINTS and 12_345 in kept
    assert (np.diff(kept) > 0).all()
    assert thin(np.array([1.0, 2.0]), MAX_SCATTER_POINTS, KEEP_SLOWEST).tolist() == [0, 1]
    recs = [ok(0, i, 0.001 * i, 20.0 + (i % 13)) for i in range(6000)]
    write_folder(tmp_path / "big", [poisson_plan()], recs)
    html = build_report(tmp_path / "big").read_text()
    assert f"{MAX_SCATTER_POINTS:,} of 6,000" in html and f"{KEEP_SLOWEST} slowest" in html
    assert len(html) < 3_000_000


def test_missing_records_still_reports_numbers(tmp_path: Path) -> None:
    summary = write_folder(tmp_path / "r", [poisson_plan()], run_records(0))
    (tmp_path / "r" / RECORDS_FILE).unlink()
    html = build_report(tmp_path / "r").read_text()
    assert "<svg" not in html and "records.parquet is missing" in html
    assert value_of(html, "requests_ok") == repr(summary.runs[0].requests_ok)


def test_cancelled_run_is_flagged(tmp_path: Path) -> None:
    write_folder(tmp_path / "r", [poisson_plan()], run_records(0), state=BenchState.CANCELLED)
    html = build_report(tmp_path / "r").read_text()
    assert "ended in state &#39;cancelled&#39;" in html


def test_experiment_report_and_command(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    write_folder(exp / "chat", [poisson_plan()], run_records(0), model="a")
    write_folder(exp / "long", [poisson_plan()], run_records(0), model="b")
    path = build_experiment_report(
        [("chat", exp / "chat"), ("long", exp / "long")],
        tmp_path / "x.html",
        title=HOSTILE,
        extra={"experiment": "e1"},
    )
    html = path.read_text()
    assert_self_contained(html)
    assert "Workload: chat" in html and "Workload: long" in html
    assert html.count("<svg") == 4 and "<title>&lt;script&gt;" in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # the CLI entry: a folder of results folders, a results folder, its summary.json
    assert report_command(exp, None) == exp / "report.html"
    assert "Workload: long" in (exp / "report.html").read_text()
    assert report_command(exp / "chat", None) == exp / "chat" / "report.html"
    out = report_command(exp / "chat" / "summary.json", tmp_path / "o")
    assert out == tmp_path / "o"
    with pytest.raises(ReportError):
        report_command(tmp_path / "nope", None)
    with pytest.raises(ReportError):
        build_experiment_report([], tmp_path / "e.html", title=None, extra=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="neither"):
        report_command(tmp_path / "empty", None)


def test_clean_svg_strips_prolog_and_unused_ids_and_refuses_scripts() -> None:
    raw = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "x" "http://www.w3.org/x.dtd">\n'
        '<svg><g id="figure_1"><path id="m1" d=""/><use xlink:href="#m1"/></g></svg>'
    )
    out = clean_svg(raw)
    assert out.startswith("<svg") and 'id="figure_1"' not in out and 'id="m1"' in out
    with pytest.raises(ReportError):
        clean_svg("<svg><script>alert(1)</script></svg>")


def test_formatting_and_setup_rows() -> None:
    assert fmt_value(None) == "n/a" and fmt_value(1234) == "1,234"
    assert fmt_value(1234.56) == "1,234.6" and fmt_value(12.345) == "12.35"
    assert fmt_value(0.01234) == "0.0123" and fmt_value(0.0) == "0"
    rows = setup_rows({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}})
    assert rows == [("a.b", "1"), ("a.c", "1, 2"), ("d", "n/a"), ("e", "{}")]
