"""``run_benchmark``: validate, pre-flight, run each stage on its workers, summarise.

Stopping: set ``stop_event`` or cancel the task running ``run_benchmark``; either way the
workers cancel their in-flight requests (recorded as ``cancelled``), send what they have,
and the call *returns* a result with state ``cancelled`` instead of raising. (Cancellation
is therefore consumed here; a caller that needs it to propagate can check the state.)
Failures before the load (bad config, bad dataset file, unreachable target) raise
:class:`LoadgenError` subclasses and start nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from aifactory.loadgen.collector import (
    Collector,
    CollectorSink,
    RecordsCallback,
    WindowCallback,
)
from aifactory.loadgen.datasets.tokens import TokenCounter
from aifactory.loadgen.drivers import driver_for, preflight, resolve_backend
from aifactory.loadgen.errors import ConfigError, LoadgenError
from aifactory.loadgen.messages import WorkerReport, WorkerSpec
from aifactory.loadgen.metrics.columns import summarize_file
from aifactory.loadgen.progress import LiveProgress
from aifactory.loadgen.results import RECORDS_FILE, BenchResult, assemble_result
from aifactory.loadgen.scheduler import (
    RunPlan,
    plan_for_profile,
    rate_stage,
    split_plan,
    sweep_concurrency,
    sweep_poisson,
    sweep_rates,
    synchronous_stage,
    throughput_stage,
)
from aifactory.loadgen.workers import ProcessWorkers, prepared_worker
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import LoopKind, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig, ProfileKind

#: In-process start lead: lets the first scheduled send be on time.
_IN_PROCESS_LEAD_NS = 10_000_000


def next_stage(config: BenchConfig, done: list[RunSummary]) -> RunPlan | None:
    """The next run to do, given the ones done (sweeps plan their rates from the first two)."""
    if config.profile is not ProfileKind.SWEEP:
        return None if done else plan_for_profile(config)
    i = len(done)
    if i == 0:
        return synchronous_stage(config, 0)
    if i == 1:
        return throughput_stage(config, 1, sweep_concurrency(config))
    sync_rate, max_rate = done[0].request_throughput, done[1].request_throughput
    if sync_rate is None or max_rate is None:
        raise LoadgenError(
            "sweep: the synchronous or throughput stage completed no request, so there are no "
            "rates to sweep; check the target (see records.jsonl for the errors)"
        )
    rates = sweep_rates(sync_rate, max_rate, config.sweep_rates)
    if i - 2 >= len(rates):
        return None
    return rate_stage(config, i, rates[i - 2], sweep_poisson(config))


def worker_specs(
    config: BenchConfig, plan: RunPlan, workers: int | None = None
) -> list[WorkerSpec]:
    """Split a stage over ``workers`` (default: the configured number; one for a
    synchronous stage, which must keep exactly one request in flight)."""
    synchronous = plan.loop is LoopKind.CLOSED and plan.concurrency == 1
    shares = split_plan(plan, 1 if synchronous else (workers or config.workers))
    return [
        WorkerSpec(config=config, plan=share, worker_id=k, n_workers=len(shares))
        for k, share in enumerate(shares)
    ]


async def _in_process(
    spec: WorkerSpec,
    collector: Collector,
    stop: asyncio.Event,
    token_counter: TokenCounter | None,
) -> list[WorkerReport]:
    async with prepared_worker(spec, token_counter) as worker:
        start_ns = time.perf_counter_ns() + _IN_PROCESS_LEAD_NS
        report = await worker.run(CollectorSink(collector), stop, start_ns=start_ns)
    return [report]


async def _run_stage(
    config: BenchConfig,
    plan: RunPlan,
    collector: Collector,
    stop: asyncio.Event,
    token_counter: TokenCounter | None,
) -> RunSummary:
    specs = worker_specs(config, plan)
    collector.begin_stage(plan)
    # Record times count from the workers' shared start, a few ms (the start lead) after
    # this: close enough to line the server's samples up with the run (report, aggregates).
    started_at = utcnow()
    if len(specs) == 1:
        work = asyncio.create_task(_in_process(specs[0], collector, stop, token_counter))
    else:
        if token_counter is not None:
            raise ConfigError("a custom token counter works with workers=1 only")
        work = asyncio.create_task(ProcessWorkers(specs, collector.add).run(stop))
    cancelled = False
    try:
        reports = await asyncio.shield(work)
    except asyncio.CancelledError:
        cancelled = True
        stop.set()
        reports = await work
    cancelled = cancelled or stop.is_set() or any(r.cancelled for r in reports)
    collector.emit_window()
    state = BenchState.CANCELLED if cancelled else BenchState.COMPLETED
    path = collector.end_stage()
    assert path is not None, "the stage began with a records file"
    run = summarize_file(
        path,
        plan,
        reports,
        config.slo,
        state=state,
        targets=config.targets,
        started_at=started_at,
        top_k=config.vector.top_k if config.vector else None,
    )
    return await settle(config, run)


async def settle(config: BenchConfig, run: RunSummary) -> RunSummary:
    """A completed stage with what only the server can add (a vector index's build time)."""
    if run.state is not BenchState.COMPLETED:
        return run
    backend = resolve_backend(config.backend)
    return await driver_for(backend).after_stage(config, backend, run)


async def run_benchmark(
    config: BenchConfig,
    *,
    stop_event: asyncio.Event | None = None,
    on_window: WindowCallback | None = None,
    on_records: RecordsCallback | None = None,
    progress: bool | None = None,
    token_counter: TokenCounter | None = None,
    out_dir: Path | None = None,
) -> BenchResult:
    """Run the benchmark ``config`` describes and return its summary and records file.

    Records go to ``out_dir/records.parquet`` while the run goes (a temporary folder when
    ``out_dir`` is not given: :func:`write_results` moves the file where it belongs).

    ``on_window(WindowStats)`` is called every ``config.window_s`` seconds and
    ``on_records(batch)`` with every batch of finished records; either may be a coroutine
    function. ``progress`` shows a live table (default: when stderr is a TTY).
    ``token_counter`` replaces the built-in estimate for responses without usage.
    """
    started_at = utcnow()
    resolved = await preflight(config)
    stop = stop_event or asyncio.Event()
    display = LiveProgress(enabled=progress)
    records_dir = out_dir or Path(tempfile.mkdtemp(prefix="aifactory-records-"))
    collector = Collector(
        window_s=config.window_s,
        on_window=on_window,
        on_records=on_records,
        display=display,
        records_dir=records_dir,
    )
    runs: list[RunSummary] = []
    with display:
        ticker = asyncio.create_task(collector.tick_forever())
        try:
            while (plan := next_stage(resolved, runs)) is not None:
                runs.append(await _run_stage(resolved, plan, collector, stop, token_counter))
                if runs[-1].state is BenchState.CANCELLED:
                    break
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await collector.drain_callbacks()
    cancelled = any(r.state is BenchState.CANCELLED for r in runs)
    records = collector.finish(records_dir / RECORDS_FILE)
    return assemble_result(resolved, runs, records, started_at=started_at, cancelled=cancelled)
