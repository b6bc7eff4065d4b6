"""Reports from real results folders: the real load generator against the real simulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aifactory.loadgen import BenchConfig, read_summary, run_benchmark
from aifactory.loadgen.results import write_results
from aifactory.report import build_report, report_command
from aifactory.report.charts import series_for
from aifactory.report.points import load_points
from aifactory.shared.results import ErrorType
from tests.integration.test_loadgen_simfixture import running

SIM_ARGS = ("--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "16")
HOSTILE = "<script>alert(1)</script>"


def _config(url: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "target": url,
        "workers": 1,
        "dataset": {"input_tokens": {"mean": 16}, "output_tokens": {"mean": 16}},
    }
    base.update(kw)
    return BenchConfig.model_validate(base)


def _values(html: str, metric: str) -> list[str]:
    return re.findall(rf'data-metric="{re.escape(metric)}" data-value="([^"]*)"', html)


def _assert_offline(html: str) -> None:
    assert not re.search(r"<\s*(script|link|iframe)\b", html, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html) and "@import" not in html


async def test_report_of_a_synchronous_run_with_failures(tmp_path: Path) -> None:
    faults = ("--error-rate", "0.15", "--seed", "3", "--model", HOSTILE)
    with running(*SIM_ARGS, *faults) as sim:
        result = await run_benchmark(
            _config(sim.url, requests=30, warmup_requests=2, slo={"ttft_ms": 21}),
            progress=False,
        )
    write_results(result, tmp_path / "sync")
    html_path = report_command(tmp_path / "sync", None)
    assert html_path == tmp_path / "sync" / "report.html"
    html = html_path.read_text()
    summary = read_summary(tmp_path / "sync" / "summary.json")
    run = summary.runs[0]
    assert summary.model == HOSTILE and run.requests_failed > 0 and run.warmup_excluded == 2

    _assert_offline(html)
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<svg") == 2
    for key in (
        "requests_ok",
        "requests_failed",
        "warmup_excluded",
        "duration_s",
        "request_throughput",
        "output_token_throughput",
        "total_token_throughput",
        "goodput",
    ):
        assert _values(html, key) == [repr(getattr(run, key))], key
    assert _values(html, "ttft_ms.p99") == [repr(run.ttft_ms.p99)]
    assert _values(html, "e2el_ms.p99_9") == [repr(run.e2el_ms.p99_9)]
    assert set(run.failures) == {ErrorType.HTTP_5XX}
    assert f"http_5xx {run.failures[ErrorType.HTTP_5XX]:,}" in html

    points = load_points(tmp_path / "sync" / "records.parquet", 0)
    series = series_for(summary.runs, {0: points})[0]
    assert series.ttft.size == run.requests_ok == run.ttft_ms.count  # failures/warmup out


async def test_report_of_a_sweep(tmp_path: Path) -> None:
    with running(*SIM_ARGS) as sim:
        result = await run_benchmark(
            _config(
                sim.url, profile="sweep", requests=20, concurrency=8, sweep_rates=2,
                slo={"ttft_ms": 25},
            ),
            progress=False,
        )  # fmt: skip
    write_results(result, tmp_path / "sweep")
    extra = {"recipe": "simulator", "service": {"id": "svc-1", "endpoints": [sim.url]}}
    html = build_report(tmp_path / "sweep", extra=extra, title="Sweep <test>").read_text()
    summary = read_summary(tmp_path / "sweep" / "summary.json")
    assert len(summary.runs) == 4

    _assert_offline(html)
    assert "<title>Sweep &lt;test&gt;</title>" in html
    assert html.count("<svg") == 4
    assert "Sweep: throughput" in html and "Sweep: latency against rate" in html
    assert f"<td>{sim.url}</td>" in html  # the Setup table
    for run in summary.runs:
        assert f'<tr data-run="{run.run_index}">' in html
    # the stage table, then each stage's key numbers: the same exact values, in run order
    per_run = [repr(r.request_throughput) for r in summary.runs]
    assert _values(html, "request_throughput") == per_run + per_run
    open_loop = [r for r in summary.runs if r.loop.value != "closed"]
    assert _values(html, "requested_rate") == [repr(r.requested_rate) for r in open_loop]
    assert _values(html, "schedule_delay_p99") == [repr(r.schedule_delay_ms.p99) for r in open_loop]
