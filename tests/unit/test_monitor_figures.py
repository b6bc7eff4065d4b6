"""Key figures from scrape rows: series, counter increases, aggregates, the live view."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.monitor.benchmark import run_windows, spans_of, with_server_side
from aifactory.monitor.figures import aggregates, increase, live_figures, rate, timeline
from aifactory.monitor.window import Row, read_rows, rows_of, write_rows
from aifactory.shared.messages import MonitorSamples, ScrapeTarget, SeriesGroup
from aifactory.shared.results import BenchSummary, Distribution, LoopKind, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

T0 = 1_700_000_000.0
GPU = {"gpu": "0", "UUID": "GPU-1", "Hostname": "n1"}


def scrape(t: float, running: float, tokens: float, util: float, idle: float) -> list[Row]:
    """One server scrape (two engines) and one node scrape at ``T0 + t``."""
    at = T0 + t
    return [
        Row(at, "s-service-0", "service", "n1", "up", 1.0),
        Row(
            at,
            "s-service-0",
            "service",
            "n1",
            "vllm:num_requests_running",
            running / 2,
            {"engine": "0"},
        ),
        Row(
            at,
            "s-service-0",
            "service",
            "n1",
            "vllm:num_requests_running",
            running / 2,
            {"engine": "1"},
        ),
        Row(at, "s-service-0", "service", "n1", "vllm:num_requests_waiting", 1.0),
        Row(at, "s-service-0", "service", "n1", "vllm:kv_cache_usage_perc", running / 100),
        Row(at, "s-service-0", "service", "n1", "vllm:generation_tokens_total", tokens),
        Row(at, "s-service-0", "service", "n1", "vllm:prompt_tokens_total", 4 * tokens),
        Row(at, "s-service-0", "service", "n1", "DCGM_FI_DEV_GPU_UTIL", util, GPU),
        Row(at, "s-service-0", "service", "n1", "DCGM_FI_DEV_FB_USED", 1000 + util, GPU),
        Row(at, "s-service-0", "service", "n1", "DCGM_FI_DEV_POWER_USAGE", 2 * util, GPU),
        Row(at, "s-node-0", "node", "n1", "up", 1.0),
        Row(at, "s-node-0", "node", "n1", "node_cpu_seconds_total", idle, {"mode": "idle"}),
        Row(at, "s-node-0", "node", "n1", "node_cpu_seconds_total", 2 * t, {"mode": "user"}),
        Row(at, "s-node-0", "node", "n1", "node_memory_MemTotal_bytes", 100.0),
        Row(at, "s-node-0", "node", "n1", "node_memory_MemAvailable_bytes", 60.0 - t),
    ]


def rows() -> list[Row]:
    # Idle until t=10, 100 tokens/s from t=10 to t=20 (running 10), idle after.
    out: list[Row] = []
    for t in range(0, 31, 2):
        tokens = 100.0 * min(max(t - 10, 0), 10)
        busy = 10 <= t <= 20
        out += scrape(t, 10.0 if busy else 0.0, tokens, 90.0 if busy else 0.0, idle=t * 1.0)
    return out


def test_timeline_sums_engines_and_reads_gpus_and_nodes() -> None:
    tl = timeline(rows())
    assert tl.running["s-service-0"][5] == (T0 + 10, 10.0)
    assert tl.kv_cache["s-service-0"][5] == (T0 + 10, 0.1)
    assert list(tl.gpu) == ["n1 GPU 0"]
    assert tl.gpu_series("util")["n1 GPU 0"][5] == (T0 + 10, 90.0)
    assert tl.mem_used["n1"][0] == (T0, 40.0)
    # idle grows 1 s per s, user 2 s per s: one third idle
    assert tl.cpu_busy()["n1"][0][1] == pytest.approx(2 / 3)
    assert rate(tl.generation["s-service-0"])[5] == (T0 + 12, 100.0)


def test_counter_increase_uses_the_scrapes_around_a_quiet_window() -> None:
    points = [(T0 + t, 100.0 * min(max(t - 10, 0), 10)) for t in range(0, 31, 2)]
    assert increase(points, T0 + 10.5, T0 + 19.5) == 1000.0
    # next to other load: extended from the window's own scrapes at its own rate
    loaded = {"quiet_before": T0 + 11, "quiet_after": T0 + 19}
    assert increase(points, T0 + 11, T0 + 19, **loaded) == pytest.approx(800.0)
    # a reset inside the window, or too few scrapes: no figure rather than a wrong one
    assert increase([(T0, 5.0), (T0 + 2, 1.0)], T0, T0 + 2) is None
    assert increase([], T0, T0 + 1) is None


def test_aggregates_of_a_run_window() -> None:
    agg = aggregates(
        timeline(rows()), T0 + 10, T0 + 20, client_prompt_tokens=4000, client_output_tokens=1000
    )
    assert agg.scrapes == 12 and agg.failed_scrapes == 0 and agg.gpus == 1
    assert agg.gpu_util_mean == 90.0 and agg.gpu_util_max == 90.0
    assert agg.gpu_memory_used_max_mib == 1090.0 and agg.gpu_power_mean_w == 180.0
    assert agg.kv_cache_usage_max == pytest.approx(0.1)
    assert agg.requests_running_mean == 10.0 and agg.requests_waiting_mean == 1.0
    assert agg.server_generation_tokens == 1000.0 and agg.server_prompt_tokens == 4000.0
    assert agg.node_cpu_util_mean == pytest.approx(2 / 3)
    assert agg.node_memory_used_max_bytes == 60.0


def summary(started: datetime) -> BenchSummary:
    empty = Distribution()
    run = RunSummary(
        run_index=0,
        label="poisson@10",
        started_at=started,
        loop=LoopKind.POISSON,
        workers=1,
        state=BenchState.COMPLETED,
        stop_reason="duration",
        requests_sent=2,
        requests_ok=2,
        requests_failed=0,
        warmup_excluded=0,
        **{f: empty for f in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "schedule_delay_ms")},
        **{f: empty for f in ("output_tokens", "prompt_tokens", "tokens_per_chunk")},
    )
    return BenchSummary(
        state=BenchState.COMPLETED,
        target="http://n1:8000",
        backend="openai_chat",
        model="m",
        config=BenchConfig(target="http://n1:8000", requests=2),
        started_at=started,
        finished_at=started,
        runs=[run],
    )


def test_a_summary_gains_the_server_side_of_its_run_window(tmp_path: Path) -> None:
    started = datetime.fromtimestamp(T0 + 9, UTC)
    records = [
        RequestRecord(
            0, 0, i, i, False, 1.0 + i, 1.0 + i, 11.0, output_tokens=500, prompt_tokens=2000
        )
        for i in range(2)
    ]
    assert run_windows(summary(started), spans_of(records)) == {0: (T0 + 10, T0 + 20)}
    path = tmp_path / "server_metrics.jsonl"
    write_rows(path, rows())
    assert read_rows(path) == rows()
    server = with_server_side(summary(started), spans_of(records), read_rows(path)).runs[0].server
    assert server is not None
    assert server.server_generation_tokens == 1000.0 and server.client_output_tokens == 1000
    assert server.client_prompt_tokens == 4000


def test_rows_of_a_failed_scrape_say_why() -> None:
    target = ScrapeTarget(
        key="s-node-0",
        url="http://n1:9100/metrics",
        service_id="s",
        recipe="inference/x",
        job_id="1",
        node="n1",
        role="node",
    )
    time = datetime.fromtimestamp(T0, UTC)
    bad = MonitorSamples(
        time=time,
        service_id="s",
        target=target,
        up=False,
        error="timeout",
        duration_s=4.0,
        size_bytes=0,
    )
    good = bad.model_copy(
        update={
            "up": True,
            "error": None,
            "groups": [SeriesGroup(labels={}, values={"node_load1": 1.5})],
        }
    )
    assert rows_of([bad, good]) == [
        Row(T0, "s-node-0", "node", "n1", "up", 0.0, {"error": "timeout"}),
        Row(T0, "s-node-0", "node", "n1", "up", 1.0, {}),
        Row(T0, "s-node-0", "node", "n1", "node_load1", 1.5, {}),
    ]


def test_live_figures_show_the_latest_state() -> None:
    shown = dict(live_figures(timeline(rows()[: 15 * 7])))  # up to t=12: under load
    assert shown["requests running"] == "10" and shown["requests waiting"] == "1"
    assert shown["output tokens/s"] == "100"
    assert shown["n1 GPU 0"].startswith("90 %")
    assert shown["target s-node-0"] == "up"


def test_spans_read_from_the_records_file_match_the_records_in_memory(tmp_path: Path) -> None:
    from aifactory.loadgen.store import RecordWriter
    from aifactory.monitor.benchmark import spans_in_file
    from aifactory.shared.results import ErrorType

    records = [
        RequestRecord(
            run,
            0,
            i,
            i,
            i < 2,
            0.5 * i + run,
            0.5 * i + run,
            3.0 + i + run,
            output_tokens=10 + i,
            prompt_tokens=100 + i,
        )
        for run in range(3)
        for i in range(7)
    ]
    records[4].error = ErrorType.TIMEOUT  # a failure: in the extent, not in the token sums
    records[4].output_tokens = None
    records[9].prompt_tokens = None
    writer = RecordWriter(tmp_path / "records.parquet")
    writer.add(records[:10])
    writer.flush()  # two row groups: spans are merged across them
    writer.add(records[10:])
    writer.close()
    assert spans_in_file(tmp_path / "records.parquet") == spans_of(records)
