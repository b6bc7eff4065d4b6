"""Worker processes: two processes share a run; statistics are exact over the union."""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from aifactory.loadgen import (
    BenchConfig,
    read_summary,
    run_benchmark,
    write_results,
)
from aifactory.loadgen.errors import WorkerError
from aifactory.loadgen.messages import WorkerSpec
from aifactory.loadgen.runner import worker_specs
from aifactory.loadgen.scheduler import plan_for_profile
from aifactory.loadgen.store import iter_records
from aifactory.loadgen.workers import ProcessWorkers, spec_json
from aifactory.shared.results import PERCENTILES, Distribution
from tests.integration.test_loadgen_simfixture import running


def _config(url: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {"target": url, "dataset": {"output_tokens": {"mean": 16}}}
    base.update(kw)
    return BenchConfig.model_validate(base)


def _check_exact(dist: Distribution, values: list[float]) -> None:
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    assert dist.count == len(values)
    for name, q in PERCENTILES.items():
        assert getattr(dist, name) == pytest.approx(cuts[round(q * 1000) - 1], rel=1e-12, abs=1e-12)
    assert dist.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert dist.std == pytest.approx(statistics.pstdev(values), rel=1e-9)


async def test_two_worker_processes_merge_percentiles_exactly(tmp_path: Path) -> None:
    args = ("--ttft-ms", "20", "--itl-ms", "2", "--itl-jitter-ms", "1.5", "--output-tokens", "16")
    with running(*args) as sim:
        cfg = _config(
            sim.url,
            profile="concurrency",
            concurrency=8,
            requests=300,
            workers=2,
            warmup_requests=4,
        )
        result = await run_benchmark(cfg)
    paths = write_results(result, tmp_path)
    records = list(iter_records(paths["records"]))
    run = read_summary(paths["summary"]).runs[0]
    assert run.workers == 2
    assert len(set(run.worker_pids)) == 2 and os.getpid() not in run.worker_pids
    assert {r.worker_id for r in records} == {0, 1}
    measured = [r for r in records if r.ok and not r.warmup]
    assert len(measured) == run.requests_ok == 300
    assert sum(1 for r in records if r.warmup) == run.warmup_excluded == 4
    _check_exact(run.ttft_ms, [r.ttft_ms for r in measured if r.ttft_ms is not None])
    _check_exact(run.tpot_ms, [r.tpot_ms for r in measured if r.tpot_ms is not None])
    _check_exact(run.e2el_ms, [r.e2e_ms for r in measured if r.e2e_ms is not None])
    _check_exact(run.itl_ms, [x for r in measured for x in r.itl_ms])
    # Both workers did real work, on one shared time base.
    per_worker = [[r for r in measured if r.worker_id == w] for w in (0, 1)]
    assert all(len(rs) > 100 for rs in per_worker)
    starts = [min(r.t0_s for r in rs) for rs in per_worker]
    assert abs(starts[0] - starts[1]) < 0.25  # same start instant, not seconds apart


async def test_a_failing_worker_process_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "gone.jsonl"
    cfg = BenchConfig(
        target="http://127.0.0.1:9",
        model="m",
        requests=4,
        workers=2,
        profile="concurrency",
        concurrency=2,
        dataset={"format": "jsonl", "path": str(missing)},
    )
    specs = worker_specs(cfg, plan_for_profile(cfg))
    with pytest.raises(
        WorkerError, match=r"worker \d failed: DatasetError: .*gone.jsonl: file not found"
    ):
        await ProcessWorkers(specs, lambda records, progress: None).run(asyncio.Event())


def test_spec_for_a_child_keeps_the_api_key() -> None:
    cfg = BenchConfig(target="http://h:1", model="m", requests=1, api_key="sk-123")
    spec = worker_specs(cfg, plan_for_profile(cfg))[0]
    assert "sk-123" not in spec.model_dump_json()
    back = WorkerSpec.model_validate_json(spec_json(spec))
    assert back.config.api_key is not None and back.config.api_key.get_secret_value() == "sk-123"
