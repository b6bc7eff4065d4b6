"""Sweep: synchronous, then max throughput, then rates evenly in between, each a sub-run."""

from __future__ import annotations

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.shared.results import LoopKind
from tests.integration.test_loadgen_simfixture import running


async def test_sweep_runs_every_stage() -> None:
    with running("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "8") as sim:
        cfg = BenchConfig(
            target=sim.url,
            profile="sweep",
            concurrency=8,
            sweep_rates=2,
            requests=40,
            workers=1,
            dataset={"output_tokens": {"mean": 8}},
        )
        result = await run_benchmark(cfg)
    runs = result.summary.runs
    assert [r.run_index for r in runs] == [0, 1, 2, 3]
    assert [r.loop for r in runs] == [
        LoopKind.CLOSED,
        LoopKind.CLOSED,
        LoopKind.CONSTANT,
        LoopKind.CONSTANT,
    ]
    sync, peak = runs[0].request_throughput, runs[1].request_throughput
    assert sync is not None and peak is not None and peak > 3 * sync
    rates = [r.requested_rate for r in runs[2:]]
    assert rates[0] is not None and rates[1] is not None
    assert sync < rates[0] < rates[1] < peak
    assert abs((rates[1] - rates[0]) - (peak - sync) / 3) < 1e-6
    assert all(r.requests_ok == 40 for r in runs)
    assert {r.run_index for r in result.records} == {0, 1, 2, 3}
