"""Load profiles and their expansion into per-worker plans (see ``profiles`` and ``plan``)."""

from aifactory.loadgen.scheduler.plan import RunPlan, arrival_offsets, split_plan, sweep_rates
from aifactory.loadgen.scheduler.profiles import (
    SWEEP_DEFAULT_CONCURRENCY,
    plan_for_profile,
    rate_stage,
    sweep_concurrency,
    sweep_poisson,
    synchronous_stage,
    throughput_stage,
)
from aifactory.shared.results import LoopKind

__all__ = [
    "SWEEP_DEFAULT_CONCURRENCY",
    "LoopKind",
    "RunPlan",
    "arrival_offsets",
    "plan_for_profile",
    "rate_stage",
    "split_plan",
    "sweep_concurrency",
    "sweep_poisson",
    "sweep_rates",
    "synchronous_stage",
    "throughput_stage",
]
