"""Run summaries: the §6 definitions on hand-made records (failures and warmup kept apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.metrics.records import RequestRecord, dump_records, load_records
from aifactory.loadgen.metrics.summary import meets_slo, summarize_run
from aifactory.loadgen.results import BenchResult, read_records, read_summary, write_results
from aifactory.loadgen.scheduler import RunPlan
from aifactory.loadgen.store import iter_records, write_records
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import BenchSummary, ErrorType, LoopKind, TokenSource
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig, SloConfig


def ok(
    i: int, t0: float, ttft: float, e2e: float, n: int, *, warmup: bool = False
) -> RequestRecord:
    return RequestRecord(
        run_index=0,
        worker_id=i % 2,
        request_index=i,
        prompt_index=i,
        warmup=warmup,
        scheduled_s=t0 - 0.001,
        t0_s=t0,
        end_s=t0 + e2e / 1000 + 0.0005,
        ttft_ms=ttft,
        e2e_ms=e2e,
        tpot_ms=(e2e - ttft) / (n - 1),
        itl_ms=[1.0] * (n - 1),
        chunks=n,
        output_tokens=n,
        output_tokens_source=TokenSource.USAGE,
        prompt_tokens=10,
        prompt_tokens_source=TokenSource.USAGE,
        http_status=200,
    )


def failed(i: int, t0: float, error: ErrorType) -> RequestRecord:
    return RequestRecord(
        run_index=0,
        worker_id=0,
        request_index=i,
        prompt_index=i,
        warmup=False,
        scheduled_s=t0,
        t0_s=t0,
        end_s=t0 + 0.01,
        error=error,
        error_message="x",
    )


PLAN = RunPlan(loop=LoopKind.POISSON, rate=4.0, max_seconds=60, max_in_flight=8)
REPORT = WorkerReport(
    worker_id=0,
    run_index=0,
    sent=7,
    completed=7,
    cap_hits=1,
    max_in_flight=3,
    stop_reason="requests",
    cancelled=False,
    cpu_s=0.07,
    wall_s=2.0,
    pid=1,
)


def records() -> list[RequestRecord]:
    return [
        ok(0, 0.0, 1000.0, 2000.0, 11, warmup=True),  # huge, but warmup: excluded
        ok(1, 1.0, 50.0, 150.0, 11),
        ok(2, 1.5, 60.0, 260.0, 21),
        ok(3, 2.0, 70.0, 170.0, 2),
        failed(4, 2.5, ErrorType.HTTP_5XX),
        failed(5, 3.0, ErrorType.STREAM_CUT),
        failed(6, 3.0, ErrorType.HTTP_5XX),
    ]


def test_summary_definitions() -> None:
    slo = SloConfig(ttft_ms=65, tpot_ms=20)
    s = summarize_run(PLAN, records(), [REPORT], slo, state=BenchState.COMPLETED)
    assert (s.requests_sent, s.requests_ok, s.requests_failed) == (6, 3, 3)
    assert s.failures == {ErrorType.HTTP_5XX: 2, ErrorType.STREAM_CUT: 1}
    assert s.warmup_excluded == 1
    # latencies only from successful measured requests
    assert s.ttft_ms.count == 3 and s.ttft_ms.max == 70.0 and s.ttft_ms.p50 == 60.0
    assert s.tpot_ms.p50 == pytest.approx(10.0)
    assert s.itl_ms.count == 10 + 20 + 1
    assert s.schedule_delay_ms.count == 6
    # duration = last response - first send (measured)
    assert s.first_send_s == 1.0
    assert s.last_response_s == pytest.approx(3.01)
    assert s.duration_s == pytest.approx(2.01)
    assert s.achieved_rate == pytest.approx(6 / 2.0)
    assert s.request_throughput == pytest.approx(3 / 2.01)
    assert s.output_token_throughput == pytest.approx(34 / 2.01)
    assert s.total_token_throughput == pytest.approx((34 + 30) / 2.01)
    # goodput: #1 (ttft 50, tpot 10) and #2 (60, 10) meet; #3 (ttft 70) does not
    assert s.goodput_requests == 2
    assert s.goodput == pytest.approx(2 / 2.01)
    assert s.output_tokens_source == {TokenSource.USAGE: 3}
    assert s.in_flight_cap_hits == 1
    assert s.cpu_ms_per_request == pytest.approx(10.0)


def test_goodput_absent_without_slo_and_slo_edge_cases() -> None:
    s = summarize_run(PLAN, records(), [REPORT], SloConfig(), state=BenchState.COMPLETED)
    assert s.goodput is None and s.goodput_requests is None
    rec = ok(1, 1.0, 50.0, 150.0, 11)
    rec.tpot_ms = None  # one token: no TPOT, meets a TPOT objective
    assert meets_slo(rec, SloConfig(tpot_ms=1))
    rec.ttft_ms = None  # not streamed: TTFT unknown, fails a TTFT objective
    assert not meets_slo(rec, SloConfig(ttft_ms=1000))
    assert not meets_slo(failed(1, 0, ErrorType.TIMEOUT), SloConfig(e2el_ms=1e9))


def test_records_roundtrip_through_bytes_and_files(tmp_path: Path) -> None:
    recs = records()
    assert load_records(dump_records(recs)) == recs
    s = summarize_run(PLAN, recs, [REPORT], SloConfig(ttft_ms=65), state=BenchState.COMPLETED)
    summary = BenchSummary(
        state=BenchState.COMPLETED,
        target="http://x:1",
        backend="openai_completions",
        model="m",
        config=BenchConfig(target="http://x:1", requests=6, model="m"),
        started_at=utcnow(),
        finished_at=utcnow(),
        runs=[s],
    )
    stored = write_records(recs, tmp_path / "tmp" / "records.parquet")
    paths = write_results(BenchResult(summary=summary, records_path=stored), tmp_path / "out")
    assert list(iter_records(paths["records"])) == recs
    assert read_records(paths["records"]).num_rows == len(recs)  # an Arrow table
    back = read_summary(paths["summary"])
    assert back == summary
    header, row = paths["csv"].read_text().splitlines()
    assert "ttft_ms_p99_9" in header.split(",")
    assert "http_5xx=2;stream_cut=1" in row
