"""Profiles: drift-free arrival times, gamma burstiness, worker splits, sweeps, the budget."""

from __future__ import annotations

import itertools
import statistics

import pytest

from aifactory.loadgen.engine import Budget
from aifactory.loadgen.runner import next_stage, worker_specs
from aifactory.loadgen.scheduler import (
    RunPlan,
    arrival_offsets,
    plan_for_profile,
    split_plan,
    sweep_rates,
)
from aifactory.shared.results import LoopKind
from aifactory.shared.workload import BenchConfig, ProfileKind

NS = 1_000_000_000


def _plan(**kw: object) -> RunPlan:
    base: dict[str, object] = {
        "loop": LoopKind.POISSON,
        "rate": 100.0,
        "max_seconds": 60,
        "max_in_flight": 64,
    }
    base.update(kw)
    return RunPlan.model_validate(base)


def test_constant_rate_is_exact_and_split_interleaves_evenly() -> None:
    plan = _plan(loop=LoopKind.CONSTANT, rate=100.0)
    assert list(itertools.islice(arrival_offsets(plan), 4)) == pytest.approx([0, 0.01, 0.02, 0.03])
    shares = split_plan(plan, 4)
    merged = sorted(t for s in shares for t in itertools.islice(arrival_offsets(s), 25))
    assert merged == pytest.approx([i / 100 for i in range(100)])
    assert [s.seed for s in shares] == [0, 1, 2, 3]


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_gamma_arrivals_have_the_rate_and_burstiness(burstiness: float) -> None:
    plan = _plan(rate=50.0, burstiness=burstiness, seed=3)
    times = list(itertools.islice(arrival_offsets(plan), 40_001))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.03)
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    assert cv == pytest.approx(1 / burstiness**0.5, rel=0.05)  # gamma: CV = 1/sqrt(shape)
    again = list(itertools.islice(arrival_offsets(plan), 100))
    assert again == times[:100]


def test_split_counts_concurrency_and_in_flight() -> None:
    plan = _plan(
        loop=LoopKind.CLOSED,
        rate=None,
        concurrency=5,
        requests=11,
        warmup_requests=3,
        max_in_flight=9,
    )
    shares = split_plan(plan, 3)
    assert [s.concurrency for s in shares] == [2, 2, 1]
    assert [s.requests for s in shares] == [4, 4, 3]
    assert [s.warmup_requests for s in shares] == [1, 1, 1]
    assert sum(s.max_in_flight for s in shares) == 9
    assert len(split_plan(plan.model_copy(update={"concurrency": 2}), 8)) == 2
    assert len(split_plan(_plan(requests=1), 4)) == 1
    assert sum(s.rate or 0 for s in split_plan(_plan(rate=90.0), 3)) == pytest.approx(90.0)


def test_sweep_rates_between_sync_and_max() -> None:
    assert sweep_rates(2.0, 12.0, 4) == pytest.approx([4.0, 6.0, 8.0, 10.0])
    assert sweep_rates(12.0, 2.0, 1) == pytest.approx([7.0])


def _cfg(**kw: object) -> BenchConfig:
    base: dict[str, object] = {
        "target": "http://127.0.0.1:9",
        "model": "m",
        "requests": 10,
        "workers": 4,
    }
    base.update(kw)
    return BenchConfig.model_validate(base)


def test_profile_plans_and_synchronous_uses_one_worker() -> None:
    assert plan_for_profile(_cfg()).loop is LoopKind.CLOSED
    assert len(worker_specs(_cfg(), plan_for_profile(_cfg()))) == 1
    cfg = _cfg(profile=ProfileKind.POISSON, rate=40.0)
    specs = worker_specs(cfg, plan_for_profile(cfg))
    assert [s.worker_id for s in specs] == [0, 1, 2, 3]
    assert all(s.plan.rate == 10.0 and s.n_workers == 4 for s in specs)
    cfg = _cfg(profile=ProfileKind.CONCURRENCY, concurrency=8)
    assert plan_for_profile(cfg).label == "concurrency@8"


def test_sweep_stages_follow_measured_rates() -> None:
    from aifactory.shared.results import Distribution, RunSummary
    from aifactory.shared.states import BenchState

    cfg = _cfg(profile=ProfileKind.SWEEP, sweep_rates=2, concurrency=16)
    first = next_stage(cfg, [])
    assert first is not None and first.concurrency == 1
    d = Distribution()

    def done(i: int, rps: float | None) -> RunSummary:
        return RunSummary(
            run_index=i,
            label="x",
            loop=LoopKind.CLOSED,
            workers=1,
            state=BenchState.COMPLETED,
            stop_reason="requests",
            requests_sent=1,
            requests_ok=1,
            requests_failed=0,
            warmup_excluded=0,
            request_throughput=rps,
            ttft_ms=d,
            tpot_ms=d,
            itl_ms=d,
            e2el_ms=d,
            schedule_delay_ms=d,
            output_tokens=d,
            prompt_tokens=d,
            tokens_per_chunk=d,
        )

    second = next_stage(cfg, [done(0, 3.0)])
    assert second is not None and second.concurrency == 16
    third = next_stage(cfg, [done(0, 3.0), done(1, 33.0)])
    assert (
        third is not None and third.loop is LoopKind.CONSTANT and third.rate == pytest.approx(13.0)
    )
    runs = [done(0, 3.0), done(1, 33.0), done(2, 13.0), done(3, 23.0)]
    assert next_stage(cfg, runs) is None
    with pytest.raises(Exception, match="no rates to sweep"):
        next_stage(cfg, [done(0, None), done(1, 33.0)])


def test_budget_counts_warmup_then_requests() -> None:
    budget = Budget(
        _plan(loop=LoopKind.CLOSED, rate=None, concurrency=1, requests=3, warmup_requests=2), 0
    )
    flags = [budget.admit(i) for i in range(10)]
    assert flags == [True, True, False, False, False, None, None, None, None, None]
    assert budget.stop_reason == "requests"
    assert (budget.issued, budget.measured) == (5, 3)


def test_budget_duration_from_first_measured_and_time_warmup() -> None:
    b = Budget(_plan(duration_s=1.0, warmup_requests=1), 0)
    assert b.admit(0) is True
    assert b.admit(NS // 2) is False  # measured phase starts here: ends at 1.5 s
    assert b.admit(NS + NS // 4) is False
    assert b.admit(NS + NS // 2) is None
    assert b.stop_reason == "duration"
    t = Budget(_plan(duration_s=1.0, warmup_s=0.5), 0)
    assert [t.admit(x) for x in (0, NS // 4, NS // 2, NS, 3 * NS // 2)] == [
        True,
        True,
        False,
        False,
        None,
    ]


def test_budget_hard_bound_and_stop() -> None:
    b = Budget(_plan(max_seconds=2.0), 0)
    assert b.admit(NS) is False
    assert b.admit(2 * NS) is None
    assert b.stop_reason == "max_seconds"
    s = Budget(_plan(max_seconds=2.0), 0)
    s.stop("stopped")
    assert s.admit(0) is None and s.stop_reason == "stopped"
