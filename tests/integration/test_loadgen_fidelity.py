"""Measured figures match what the simulator was told to produce (low load, pinned cores)."""

from __future__ import annotations

from typing import Any

import pytest

from aifactory.loadgen import BenchConfig, RequestRecord, run_benchmark
from aifactory.shared.results import TokenSource, WindowStats
from tests.integration.test_loadgen_simfixture import pinned, running

SIM_ARGS = ("--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "64")


def _config(url: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "target": url,
        "workers": 1,
        "dataset": {"input_tokens": {"mean": 32}, "output_tokens": {"mean": 64}},
    }
    base.update(kw)
    return BenchConfig.model_validate(base)


async def test_synchronous_completions_fidelity() -> None:
    with running(*SIM_ARGS, realtime=True) as sim, pinned():
        result = await run_benchmark(_config(sim.url, requests=30, warmup_requests=2))
    run = result.summary.runs[0]
    assert run.requests_ok == 30 and run.requests_failed == 0
    assert run.warmup_excluded == 2
    assert run.ttft_ms.p50 is not None and run.tpot_ms.p50 is not None
    assert abs(run.ttft_ms.p50 - 50.0) <= 2.0, run.ttft_ms
    assert abs(run.tpot_ms.p50 - 5.0) <= 0.3, run.tpot_ms
    assert run.itl_ms.count == 30 * 63
    assert run.output_tokens_source == {TokenSource.USAGE: 30}
    measured = [r for r in result.records if not r.warmup]
    assert all(r.output_tokens == 64 and r.chunks == 64 for r in measured)
    assert all(r.prompt_tokens_source is TokenSource.USAGE for r in measured)
    assert run.tokens_per_chunk.mean == 1.0
    assert result.summary.model == "simulator"


@pytest.mark.parametrize("backend", ["openai_chat", "ollama_generate"])
async def test_other_backends_fidelity(backend: str) -> None:
    with running(*SIM_ARGS, realtime=True) as sim, pinned():
        result = await run_benchmark(_config(sim.url, backend=backend, requests=10))
    run = result.summary.runs[0]
    assert run.requests_ok == 10
    assert run.ttft_ms.p50 is not None and abs(run.ttft_ms.p50 - 50.0) <= 2.0
    assert run.tpot_ms.p50 is not None and abs(run.tpot_ms.p50 - 5.0) <= 0.3
    assert all(r.output_tokens == 64 for r in result.records)
    assert run.output_tokens_source == {TokenSource.USAGE: 10}


async def test_non_streamed_requests_have_e2e_only() -> None:
    with running(*SIM_ARGS, realtime=True) as sim, pinned():
        result = await run_benchmark(_config(sim.url, stream=False, requests=5))
    run = result.summary.runs[0]
    assert run.requests_ok == 5
    assert run.ttft_ms.count == 0 and run.tpot_ms.count == 0
    assert run.e2el_ms.p50 is not None and abs(run.e2el_ms.p50 - (50 + 63 * 5)) <= 5
    assert all(r.output_tokens == 64 for r in result.records)


async def test_window_and_record_callbacks() -> None:
    windows: list[WindowStats] = []
    batches: list[list[RequestRecord]] = []

    async def on_window(w: WindowStats) -> None:
        windows.append(w)

    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8") as sim:
        result = await run_benchmark(
            _config(sim.url, profile="concurrency", concurrency=4, duration_s=2.0, window_s=0.5),
            on_window=on_window,
            on_records=batches.append,
        )
    assert len(windows) >= 3
    assert windows[-1].completed == len(result.records)
    assert any(w.ttft_p50_ms is not None and w.request_rate > 0 for w in windows)
    assert sum(len(b) for b in batches) == len(result.records)
    assert result.summary.runs[0].stop_reason == "duration"
