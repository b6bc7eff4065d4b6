"""Stopping: cancelling the task or setting the stop event returns partial, cancelled results."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.shared.results import ErrorType
from aifactory.shared.states import BenchState
from tests.integration.test_loadgen_simfixture import running

SIM = ("--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "64")


def _config(url: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "target": url,
        "profile": "concurrency",
        "concurrency": 4,
        "duration_s": 60,
        "dataset": {"output_tokens": {"mean": 64}},
    }
    base.update(kw)
    return BenchConfig.model_validate(base)


async def test_cancelling_the_task_returns_partial_results_promptly() -> None:
    with running(*SIM) as sim:
        task = asyncio.create_task(run_benchmark(_config(sim.url, workers=1)))
        await asyncio.sleep(1.5)
        cancelled_at = time.monotonic()
        task.cancel()
        result = await task
        elapsed = time.monotonic() - cancelled_at
    assert elapsed < 0.5
    assert result.summary.state is BenchState.CANCELLED
    run = result.summary.runs[0]
    assert run.state is BenchState.CANCELLED and run.stop_reason == "stopped"
    assert run.requests_ok >= 8  # ~1.5 s at 4 x (1 / 0.37 s)
    assert run.failures == {ErrorType.CANCELLED: 4}  # the four in flight
    assert run.ttft_ms.count == run.requests_ok


async def test_stop_event_stops_worker_processes() -> None:
    stop = asyncio.Event()
    loading = asyncio.Event()
    with running(*SIM) as sim:
        task = asyncio.create_task(
            run_benchmark(
                _config(sim.url, workers=2),
                stop_event=stop,
                on_records=lambda batch: loading.set() if batch else None,
            )
        )
        await asyncio.wait_for(loading.wait(), timeout=30)  # worker processes are loading
        await asyncio.sleep(0.5)
        stop.set()
        stopped_at = time.monotonic()
        result = await task
        elapsed = time.monotonic() - stopped_at
    run = result.summary.runs[0]
    facts = f"elapsed={elapsed:.2f}s failures={run.failures} workers={run.worker_pids}"
    assert elapsed < 3.0, facts  # typically 0.15-0.3 s: stop message, last batch, exit
    assert result.summary.state is BenchState.CANCELLED and run.workers == 2, facts
    assert run.failures.get(ErrorType.CANCELLED, 0) >= 1, facts
    assert {r.worker_id for r in result.records} == {0, 1}, facts
