"""Load profiles: what one (sub-)run asks of each worker, and when open-loop sends happen.

Open-loop arrivals are absolute offsets from the run's start (a cumulative sum, so no drift
accumulates from late wake-ups). Splitting over ``W`` workers keeps the aggregate process:
constant rate ``r`` becomes ``W`` interleaved streams at ``r/W`` shifted by ``k/r``; a
Poisson process of rate ``r`` is the superposition of ``W`` independent ones at ``r/W``
(for burstiness != 1 the superposition is only approximately gamma, which is why ``W``
stays small). Concurrency and request counts are split as evenly as integers allow.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from aifactory.shared.results import LoopKind


class RunPlan(BaseModel):
    """One worker's (or, before :func:`split_plan`, the whole run's) share of a sub-run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_index: int = 0
    label: str = "run"
    loop: LoopKind
    rate: float | None = Field(default=None, gt=0)  # open loop, requests/s
    concurrency: int | None = Field(default=None, ge=1)  # closed loop
    burstiness: float = Field(default=1.0, gt=0)
    phase_s: float = 0.0  # constant-rate offset of this worker's stream
    requests: int | None = Field(default=None, ge=0)  # measured requests
    duration_s: float | None = Field(default=None, gt=0)  # measured seconds
    warmup_requests: int = Field(default=0, ge=0)
    warmup_s: float = Field(default=0.0, ge=0)
    max_seconds: float = Field(gt=0)  # hard bound on the whole sub-run
    max_in_flight: int = Field(ge=1)  # open-loop safety valve
    seed: int = 0

    @property
    def pool_size(self) -> int:
        if self.loop is LoopKind.CLOSED:
            assert self.concurrency is not None
            return self.concurrency
        return self.max_in_flight


def _split_int(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if k < extra else 0) for k in range(parts)]


def split_plan(plan: RunPlan, workers: int) -> list[RunPlan]:
    """Divide a run among up to ``workers`` workers (fewer if concurrency is smaller)."""
    if plan.loop is LoopKind.CLOSED:
        assert plan.concurrency is not None
        workers = min(workers, plan.concurrency)
    if plan.requests is not None:
        workers = min(workers, max(1, plan.requests))
    workers = max(1, workers)
    conc = _split_int(plan.concurrency, workers) if plan.concurrency else [None] * workers
    reqs = _split_int(plan.requests, workers) if plan.requests is not None else [None] * workers
    warm = _split_int(plan.warmup_requests, workers)
    inflight = [max(1, n) for n in _split_int(plan.max_in_flight, workers)]
    shares: list[RunPlan] = []
    for k in range(workers):
        update: dict[str, object] = {
            "concurrency": conc[k],
            "requests": reqs[k],
            "warmup_requests": warm[k],
            "max_in_flight": inflight[k],
            "seed": plan.seed * 1000 + k,
        }
        if plan.rate is not None:
            update["rate"] = plan.rate / workers
            update["phase_s"] = k / plan.rate
        shares.append(plan.model_copy(update=update))
    return shares


def arrival_offsets(plan: RunPlan) -> Iterator[float]:
    """Endless send times (seconds from the start) for an open-loop plan."""
    assert plan.rate is not None
    if plan.loop is LoopKind.CONSTANT:
        i = 0
        while True:
            yield plan.phase_s + i / plan.rate
            i += 1
    rng = random.Random(f"arrivals:{plan.seed}")
    shape = plan.burstiness
    scale = 1.0 / (plan.rate * plan.burstiness)
    t = 0.0
    while True:
        yield t
        t += rng.gammavariate(shape, scale)


def sweep_rates(sync_rate: float, max_rate: float, n: int) -> list[float]:
    """``n`` rates evenly spaced strictly between the synchronous and maximum rates."""
    lo, hi = min(sync_rate, max_rate), max(sync_rate, max_rate)
    step = (hi - lo) / (n + 1)
    return [lo + step * (k + 1) for k in range(n)]
