"""``run_remote_benchmark``: a benchmark whose workers run as one batch job on N nodes.

Same contract as :func:`aifactory.loadgen.runner.run_benchmark` (a
:class:`BenchResult` with the summary and every record; a stop returns partial results
marked ``cancelled``; problems before the load raise ``LoadgenError``), so results, reports
and the client service treat both alike. Steps: pre-flight the target here, render and
submit ``client/loadgen`` (job ``aif-bench-<id>``), wait until every worker has said hello
(failing with the scheduler's reason if the job ends or pends too long), then per stage
(sweeps included, planned from earlier stages as locally): write the work orders, collect
records until every participant has reported, summarise from the stage's records file. The job is
released (``finish``) at the end and cancelled in every case.

A run fails (:class:`RemoteWorkersError`, naming the worker) when a worker reports a
failure, goes silent (no heartbeat), dies with the job, was stopped by anyone but this
coordinator, or reports counts that differ from the records that arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy

from aifactory.loadgen.collector import Collector, RecordsCallback, WindowCallback
from aifactory.loadgen.drivers import preflight
from aifactory.loadgen.errors import ConfigError
from aifactory.loadgen.progress import LiveProgress
from aifactory.loadgen.remote import protocol
from aifactory.loadgen.remote.board import Board
from aifactory.loadgen.remote.job import (
    job_name,
    job_workdir,
    render_loadgen,
    secrets_path,
    worker_secrets,
)
from aifactory.loadgen.remote.stages import (
    PurgeRead,
    RemoteRun,
    RemoteTimeouts,
    RemoteWorkersError,
)
from aifactory.loadgen.remote.topology import ensure_work_topology, purge_benchmark
from aifactory.loadgen.results import RECORDS_FILE, BenchResult, assemble_result
from aifactory.loadgen.runner import next_stage, settle
from aifactory.shared.channel import subject_token
from aifactory.shared.executors.base import Executor, ExecutorError
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import RunSummary
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

log = logging.getLogger(__name__)

__all__ = ["RemoteTimeouts", "RemoteWorkersError", "run_remote_benchmark"]


async def run_remote_benchmark(
    config: BenchConfig,
    *,
    benchmark_id: str,
    broker: NatsBroker,
    executor: Executor,
    settings: Settings,
    stop_event: asyncio.Event,
    on_window: WindowCallback | None = None,
    on_records: RecordsCallback | None = None,
    timeouts: RemoteTimeouts | None = None,
    out_dir: Path | None = None,
) -> BenchResult:
    """Run ``config`` (``worker_nodes`` set) on a job of workers; see the module docstring.

    Record batches are written to ``out_dir/records.parquet`` as they arrive (a temporary
    folder without ``out_dir``), before the stream acknowledges them."""
    if config.worker_nodes is None:
        raise ConfigError("worker_nodes is not set: local workers run through run_benchmark")
    try:
        subject_token(benchmark_id)
    except ValueError as exc:
        raise ConfigError(f"benchmark id: {exc}") from exc
    t = timeouts or RemoteTimeouts()
    started_at = utcnow()
    resolved = await preflight(config)
    script = render_loadgen(
        resolved, benchmark_id=benchmark_id, settings=settings, executor=executor
    )
    nc = broker.connection
    js = nc.jetstream()
    kv = await ensure_work_topology(js)
    await purge_benchmark(js, benchmark_id)  # leftovers of an earlier attempt, if any
    records_dir = out_dir or Path(tempfile.mkdtemp(prefix="aifactory-records-"))
    collector = Collector(
        window_s=config.window_s,
        on_window=on_window,
        on_records=on_records,
        display=LiveProgress(enabled=False),
        records_dir=records_dir,
    )
    board = Board(benchmark_id, config.worker_nodes * config.workers, collector)

    async def on_stream(msg: Msg) -> None:
        board.on_stream_message(msg.data, msg.metadata.sequence.stream)

    async def on_beat(msg: Msg) -> None:
        board.on_heartbeat(msg.data)

    # One ordered consumer over both stored channels keeps records and "done" in order.
    stored = protocol.common_filter(
        protocol.BENCH_RECORDS, protocol.BENCH_WORKER, benchmark_id=benchmark_id
    )
    subs = [
        await js.subscribe(
            stored,
            stream=protocol.BENCH_WORK_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=on_stream,
        ),
        await nc.subscribe(protocol.BENCH_HEARTBEAT.subject(benchmark_id=benchmark_id), cb=on_beat),
    ]
    runs: list[RunSummary] = []
    run: RemoteRun | None = None
    finished = False
    ticker = asyncio.create_task(collector.tick_forever())
    secrets = worker_secrets(settings)
    secrets_file = secrets_path(settings, benchmark_id)
    try:
        if secrets is not None:
            await executor.write_secret(secrets_file, secrets)
        try:
            job = await executor.submit(
                script, job_name(benchmark_id), job_workdir(settings, benchmark_id)
            )
        except (ExecutorError, OSError) as exc:
            raise RemoteWorkersError(f"the workers' job was not accepted: {exc}") from exc
        log.info("benchmark %s: workers' job %s submitted", benchmark_id, job.job_id)
        run = RemoteRun(
            benchmark_id=benchmark_id,
            config=resolved,
            executor=executor,
            job=job,
            board=board,
            kv=kv,
            stop=stop_event,
            timeouts=t,
            purge=PurgeRead(board, broker, benchmark_id),
        )
        if await run.wait_ready():
            while not stop_event.is_set() and (plan := next_stage(resolved, runs)) is not None:
                runs.append(await settle(resolved, await run.run_stage(plan)))
        finished = not stop_event.is_set()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if run is not None:
            await run.release(finished)
        for sub in subs:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        with contextlib.suppress(NatsError, TimeoutError):
            await purge_benchmark(js, benchmark_id)
        if secrets is not None:  # the job script deletes it too, unless it was killed
            await executor.remove_file(secrets_file)
        await collector.drain_callbacks()
    cancelled = not finished or any(r.state is BenchState.CANCELLED for r in runs)
    records = collector.finish(records_dir / RECORDS_FILE)
    return assemble_result(resolved, runs, records, started_at=started_at, cancelled=cancelled)
