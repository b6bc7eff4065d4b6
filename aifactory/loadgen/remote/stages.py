"""The waits of a remote run: workers up, one stage to its end, the job released.

Split from :mod:`.coordinator` so each piece stays readable: :class:`RemoteRun` owns one
submitted job and turns what the :class:`Board` saw and what the executor says into
progress or a :class:`RemoteWorkersError` whose message names the worker and the cause
(scheduler reason, job output tail, missing heartbeats, unasked stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from aifactory.loadgen.errors import LoadgenError
from aifactory.loadgen.messages import WorkerSpec
from aifactory.loadgen.metrics.columns import summarize_file
from aifactory.loadgen.remote.board import Board
from aifactory.loadgen.remote.protocol import WorkControl, WorkOrder, control_key, order_key
from aifactory.loadgen.remote.topology import purge_read
from aifactory.loadgen.runner import worker_specs
from aifactory.loadgen.scheduler import RunPlan
from aifactory.shared.executors.base import Executor, ExecutorError, JobStatus, SubmittedJob
from aifactory.shared.results import RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.strict import WIRE
from aifactory.shared.workload import BenchConfig

log = logging.getLogger(__name__)


class RemoteWorkersError(LoadgenError):
    """The workers' job or one of its workers failed; the message names which and why."""


@dataclass(frozen=True)
class RemoteTimeouts:
    """Bounds of every wait (seconds); tests shorten them."""

    #: The job may wait this long in the queue (then: fail with the scheduler's reason).
    pending_s: float = 600.0
    #: From the job running to every worker's hello.
    ready_s: float = 120.0
    #: A worker silent this long is presumed dead.
    heartbeat_s: float = 15.0
    #: After a stop, how long workers get to send their last records.
    stop_grace_s: float = 30.0
    #: Job-state polling interval.
    poll_s: float = 1.0
    #: Lead between writing a stage's orders and its shared start.
    start_lead_s: float = 0.5


#: Drop what has been read from the work stream this often (keeps its size bounded).
PURGE_EVERY_S = 10.0
#: Executor polls that may fail in a row (squeue hiccups) before the run gives up.
MAX_POLL_ERRORS = 10
OUTPUT_TAIL = 1500


def remote_specs(config: BenchConfig, plan: RunPlan, nodes: int) -> dict[int, WorkerSpec]:
    """The stage's shares, keyed by the worker (task index) that runs each.

    Shares are spread over the nodes first (share k on node k mod nodes), so a stage that
    needs fewer workers than the job has still loads every node's network evenly. A
    synchronous stage has one share.
    """
    per_node = config.workers
    specs = worker_specs(config, plan, workers=nodes * per_node)
    return {(k % nodes) * per_node + k // nodes: spec for k, spec in enumerate(specs)}


async def _wait(event: asyncio.Event, other: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.create_task(event.wait()), asyncio.create_task(other.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class RemoteRun:
    """One submitted job and the waits around it."""

    def __init__(
        self,
        *,
        benchmark_id: str,
        config: BenchConfig,
        executor: Executor,
        job: SubmittedJob,
        board: Board,
        kv: KeyValue,
        stop: asyncio.Event,
        timeouts: RemoteTimeouts,
        purge: PurgeRead,
    ) -> None:
        self.bid = benchmark_id
        self.config = config
        self.executor = executor
        self.job = job
        self.board = board
        self.kv = kv
        self.stop = stop
        self.t = timeouts
        self.purge = purge
        self._last_poll = 0.0
        self._poll_errors = 0

    async def _tail(self) -> str:
        """The end of the job's stdout and stderr files, for the error message."""
        shown = ""
        for path in (self.job.output_path, self.job.error_path):
            if path is None:
                continue
            try:
                text = await self.executor.read(path)
            except OSError:
                continue
            tail = text[-OUTPUT_TAIL:].strip()
            shown += f"\n--- {path} (end) ---\n{tail}" if tail else ""
        return shown

    async def _status(self) -> JobStatus | None:
        """The job's status, at most once per poll interval (None between polls)."""
        now = time.monotonic()
        if now - self._last_poll < self.t.poll_s:
            return None
        self._last_poll = now
        try:
            status = (await self.executor.states([self.job.job_id]))[self.job.job_id]
        except ExecutorError as exc:
            self._poll_errors += 1
            if self._poll_errors > MAX_POLL_ERRORS:
                raise RemoteWorkersError(f"cannot follow the workers' job: {exc}") from exc
            log.warning("job %s: state unknown (%s)", self.job.job_id, exc)
            return None
        self._poll_errors = 0
        return status

    async def _ended(self, status: JobStatus, waiting_for: str) -> RemoteWorkersError:
        why = f"{status.state.value}" + (f": {status.reason}" if status.reason else "")
        return RemoteWorkersError(
            f"the workers' job {self.job.job_id} ended ({why}) while waiting for "
            f"{waiting_for}{await self._tail()}"
        )

    def _check_board(self) -> None:
        if self.board.failure is not None:
            raise RemoteWorkersError(self.board.failure)
        stale = [(w, age) for w, age in self.board.stale(self.t.heartbeat_s)]
        if stale:
            w, age = stale[0]
            raise RemoteWorkersError(
                f"{self.board.where(w)} has sent nothing for {age:.0f} s (no heartbeat): "
                "killed, hung or cut off from NATS"
            )

    async def wait_ready(self) -> bool:
        """Until every worker said hello (True) or a stop came first (False)."""
        submitted = time.monotonic()
        running_since: float | None = None
        while self.board.missing_hellos():
            self._check_board()
            if self.stop.is_set():
                return False
            status = await self._status()
            now = time.monotonic()
            if status is not None:
                if status.state.is_terminal:
                    waiting = self.board.describe(self.board.missing_hellos()[:5])
                    raise await self._ended(status, f"workers to connect ({waiting})")
                if status.state.is_active and running_since is None:
                    running_since = now
                if running_since is None and now - submitted > self.t.pending_s:
                    raise RemoteWorkersError(
                        f"the workers' job {self.job.job_id} is still {status.state.value} after "
                        f"{now - submitted:.0f} s (scheduler reason: {status.reason or 'none'})"
                    )
            if running_since is not None and now - running_since > self.t.ready_s:
                missing = self.board.missing_hellos()
                raise RemoteWorkersError(
                    f"{len(missing)} of {self.board.total} workers did not connect to NATS "
                    f"within {self.t.ready_s:.0f} s of the job starting: "
                    f"{self.board.describe(missing[:5])}{await self._tail()}"
                )
            self.board.changed.clear()
            await _wait(self.board.changed, self.stop, 0.25)
        return True

    async def control(self, action: Literal["stop", "finish"]) -> None:
        value = WorkControl(benchmark_id=self.bid, action=action)
        await self.kv.put(control_key(self.bid), value.model_dump_json().encode())

    async def run_stage(self, plan: RunPlan) -> RunSummary:
        nodes = self.config.worker_nodes or 1
        specs = remote_specs(self.config, plan, nodes)
        stage = plan.run_index
        book = self.board.begin_stage(stage, {w: s.worker_id for w, s in specs.items()})
        self.board.collector.begin_stage(plan)
        lead_s = self.t.start_lead_s + 0.002 * len(specs)
        start_wall_ns = time.time_ns() + int(lead_s * 1e9)
        for worker, spec in specs.items():
            order = WorkOrder(
                benchmark_id=self.bid,
                stage=stage,
                worker=worker,
                start_wall_ns=start_wall_ns,
                spec=spec,
            )
            # WIRE: the API key travels to the worker (see topology.py for its lifetime).
            payload = order.model_dump_json(context=WIRE).encode()
            await self.kv.put(order_key(self.bid, worker), payload)
        stopped_at: float | None = None
        while not book.complete:
            self._check_board()
            if self.stop.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
                await self.control("stop")
            if stopped_at is not None and time.monotonic() - stopped_at > self.t.stop_grace_s:
                raise RemoteWorkersError(
                    f"after the stop, {self.board.describe(book.missing())} did not report "
                    f"within {self.t.stop_grace_s:.0f} s"
                )
            status = await self._status()
            if status is not None and status.state.is_terminal:
                missing = self.board.describe(book.missing())
                raise await self._ended(status, f"the stage-{stage} results of {missing}")
            await self.purge.maybe()
            self.board.changed.clear()
            await _wait(self.board.changed, self.stop, 0.25)
        reports = [book.reports[w] for w in sorted(book.reports)]
        outside = [w for w in sorted(book.reports) if book.reports[w].cancelled]
        if outside and stopped_at is None:
            raise RemoteWorkersError(
                f"{self.board.describe(outside)} stopped in stage {stage} without being asked "
                "to (the job was cancelled, or a sibling worker failed and the job stopped "
                f"the others){await self._tail()}"
            )
        self.board.collector.emit_window()
        state = BenchState.CANCELLED if stopped_at is not None else BenchState.COMPLETED
        path = self.board.collector.end_stage()
        assert path is not None, "the stage began with a records file"
        return summarize_file(
            path,
            plan,
            reports,
            self.config.slo,
            state=state,
            targets=self.config.targets,
            started_at=datetime.fromtimestamp(start_wall_ns / 1e9, UTC),
            top_k=self.config.vector.top_k if self.config.vector else None,
        )

    async def release(self, finished: bool) -> None:
        """Let the workers exit (``finish``) or stop them, then make sure the job is gone."""
        with contextlib.suppress(NatsError, TimeoutError):
            await self.control("finish" if finished else "stop")
        deadline = time.monotonic() + (5.0 if finished else 0.0)
        while time.monotonic() < deadline:
            try:
                status = (await self.executor.states([self.job.job_id]))[self.job.job_id]
            except ExecutorError:
                break
            if status.state.is_terminal:
                break
            await asyncio.sleep(0.2)
        try:
            await self.executor.cancel(self.job.job_id)
        except ExecutorError as exc:
            log.warning("could not cancel the workers' job %s: %s", self.job.job_id, exc)


class PurgeRead:
    """Drops the stream messages already read, at most every :data:`PURGE_EVERY_S`."""

    def __init__(self, board: Board, broker: NatsBroker, benchmark_id: str) -> None:
        self.board = board
        self.js = broker.connection.jetstream()
        self.bid = benchmark_id
        self._done_seq = 0
        self._last = time.monotonic()

    async def maybe(self) -> None:
        seq = self.board.last_stream_seq
        if seq <= self._done_seq or time.monotonic() - self._last < PURGE_EVERY_S:
            return
        self._last = time.monotonic()
        # Only what is on disk leaves the stream: the records read up to ``seq`` are
        # flushed (a complete, fsynced file) before the stream drops them.
        self.board.collector.flush()
        try:
            await purge_read(self.js, self.bid, seq + 1)
            self._done_seq = seq
        except (NatsError, TimeoutError) as exc:
            log.warning("purging read records of %s failed: %s", self.bid, exc)
