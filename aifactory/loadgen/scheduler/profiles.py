"""Turn a :class:`BenchConfig` profile into whole-run plans (one per sweep stage).

A sweep is synchronous, then maximum throughput (closed loop at ``concurrency``, default
:data:`SWEEP_DEFAULT_CONCURRENCY`), then ``sweep_rates`` open-loop rates evenly spaced
between the two measured request rates; the rate stages can only be planned once the first
two have run, hence the separate stage builders.
"""

from __future__ import annotations

from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.shared.results import LoopKind
from aifactory.shared.workload import BenchConfig, ProfileKind, RateType

SWEEP_DEFAULT_CONCURRENCY = 128


def _plan(
    config: BenchConfig,
    run_index: int,
    label: str,
    loop: LoopKind,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
) -> RunPlan:
    return RunPlan(
        run_index=run_index,
        label=label,
        loop=loop,
        rate=rate,
        concurrency=concurrency,
        burstiness=config.burstiness,
        requests=config.requests,
        duration_s=config.duration_s,
        warmup_requests=config.warmup_requests,
        warmup_s=config.warmup_s,
        max_seconds=config.max_seconds,
        max_in_flight=config.max_in_flight,
        seed=config.seed + run_index,
    )


def synchronous_stage(config: BenchConfig, run_index: int = 0) -> RunPlan:
    return _plan(config, run_index, "synchronous", LoopKind.CLOSED, concurrency=1)


def throughput_stage(config: BenchConfig, run_index: int, concurrency: int) -> RunPlan:
    label = f"concurrency@{concurrency}"
    return _plan(config, run_index, label, LoopKind.CLOSED, concurrency=concurrency)


def rate_stage(config: BenchConfig, run_index: int, rate: float, poisson: bool) -> RunPlan:
    loop = LoopKind.POISSON if poisson else LoopKind.CONSTANT
    return _plan(config, run_index, f"{loop.value}@{rate:.4g}", loop, rate=rate)


def plan_for_profile(config: BenchConfig) -> RunPlan:
    """The single run of a non-sweep profile."""
    match config.profile:
        case ProfileKind.SYNCHRONOUS:
            return synchronous_stage(config)
        case ProfileKind.CONCURRENCY:
            assert config.concurrency is not None
            return throughput_stage(config, 0, config.concurrency)
        case ProfileKind.CONSTANT | ProfileKind.POISSON:
            assert config.rate is not None
            return rate_stage(config, 0, config.rate, config.profile is ProfileKind.POISSON)
        case ProfileKind.SWEEP:
            raise ValueError("a sweep has several stages; the runner plans them one by one")


def sweep_concurrency(config: BenchConfig) -> int:
    return config.concurrency or SWEEP_DEFAULT_CONCURRENCY


def sweep_poisson(config: BenchConfig) -> bool:
    return config.sweep_rate_type is RateType.POISSON
