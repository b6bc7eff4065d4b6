"""One worker's load loop: issue requests on schedule, collect records, stop by itself.

Closed loop (synchronous, concurrency): ``C`` coroutines each send, await, repeat; the
scheduled time is when the coroutine is ready, so schedule delay is ~0. Open loop (constant,
Poisson): a dispatcher sleeps until each absolute send time and starts the request without
waiting for earlier ones; beyond ``max_in_flight`` it waits for a slot and counts the hit.
:class:`Budget` decides, per request, warmup vs measured and when to stop (request count,
duration, ``max_seconds``). A stop (event, or the task being cancelled) cancels in-flight
requests, which are recorded as ``cancelled``, and the engine still returns its report.
What a request is (a prompt to generate from, a vector search or upsert) is the worker's
:class:`~aifactory.loadgen.drivers.Driver`'s business: the engine only schedules them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from aifactory.loadgen.drivers.base import Driver
from aifactory.loadgen.messages import RecordSink, WorkerProgress, WorkerReport
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.scheduler.plan import RunPlan, arrival_offsets
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.results import LoopKind

_NS = 1_000_000_000
#: Open-loop sends sleep until this close to their time, then yield to the loop until it
#: comes. Event-loop timers are millisecond-grained (uvloop even fires up to 1 ms *early*),
#: which alone would put the schedule delay anywhere in -1..+1 ms; yielding (``sleep(0)``)
#: keeps I/O flowing while waiting, at the cost of some CPU just before each send.
SPIN_NS = 1_500_000


async def sleep_until(target_ns: int) -> None:
    """Return at (never before) ``target_ns`` on the perf_counter clock, to ~10 us."""
    while True:
        left = target_ns - time.perf_counter_ns()
        if left <= 0:
            return
        await asyncio.sleep((left - SPIN_NS) / _NS if left > SPIN_NS else 0)


class Budget:
    """Admits requests until a stop condition holds; marks warmup ones.

    The measured phase lasts ``duration_s`` from the first measured request's scheduled time
    (with time warmup: from the end of warmup); ``requests`` counts measured requests only.
    """

    def __init__(self, plan: RunPlan, start_ns: int) -> None:
        self._plan = plan
        self.issued = 0
        self.measured = 0
        self.stop_reason: str | None = None
        self._hard_end = start_ns + int(plan.max_seconds * _NS)
        self._warm_end = start_ns + int(plan.warmup_s * _NS) if plan.warmup_s else None
        self._end: int | None = None
        if plan.duration_s is not None and self._warm_end is not None:
            self._end = self._warm_end + int(plan.duration_s * _NS)

    @property
    def hard_end_ns(self) -> int:
        return self._hard_end

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def admit(self, scheduled_ns: int) -> bool | None:
        """``None`` to stop issuing; otherwise whether this request is a warmup one."""
        if self.stop_reason is not None:
            return None
        if scheduled_ns >= self._hard_end:
            self.stop("max_seconds")
            return None
        plan = self._plan
        warm = self.issued < plan.warmup_requests or (
            self._warm_end is not None and scheduled_ns < self._warm_end
        )
        if not warm:
            if plan.requests is not None and self.measured >= plan.requests:
                self.stop("requests")
                return None
            if self._end is None and plan.duration_s is not None:
                self._end = scheduled_ns + int(plan.duration_s * _NS)
            if self._end is not None and scheduled_ns >= self._end:
                self.stop("duration")
                return None
            self.measured += 1
        self.issued += 1
        return warm


class LoadEngine:
    """Runs one :class:`RunPlan` share against one target and streams records to a sink."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        driver: Driver,
        clients: Sequence[HttpClient],
        sink: RecordSink,
        start_ns: int,
        worker_id: int,
        stop_event: asyncio.Event,
        flush_s: float = 0.25,
    ) -> None:
        self._plan = plan
        self._prepare = driver.next
        self._sink = sink
        self._start_ns = start_ns
        self._worker_id = worker_id
        self._stop_event = stop_event
        self._flush_s = flush_s
        self.budget = Budget(plan, start_ns)
        self._pending: list[RequestRecord] = []
        self._emit_lock = asyncio.Lock()
        self._sending: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = WorkerProgress(worker_id=worker_id, run_index=plan.run_index)
        self._max_in_flight = 0
        # One requester per endpoint; request i of worker w goes to endpoint (i + w) mod n,
        # so every endpoint gets an equal share of every worker's load.
        self._requesters = [
            driver.requester(
                endpoint,
                client,
                start_ns=start_ns,
                run_index=plan.run_index,
                worker_id=worker_id,
                deliver=self._deliver,
            )
            for endpoint, client in enumerate(clients)
        ]

    def _deliver(self, rec: RequestRecord) -> None:
        """Requester callback: one request finished (or failed, or was cancelled)."""
        self._pending.append(rec)
        self._progress.completed += 1
        self._progress.in_flight -= 1

    def _start(
        self, index: int, scheduled: int, warm: bool, item: Any, body: bytes
    ) -> Coroutine[None, None, None]:
        """Send one request now; returns the coroutine that receives its response."""
        p = self._progress
        p.sent += 1
        p.in_flight += 1
        if p.in_flight > self._max_in_flight:
            self._max_in_flight = p.in_flight
        requester = self._requesters[(index + self._worker_id) % len(self._requesters)]
        return requester.start(item, body, request_index=index, scheduled_ns=scheduled, warmup=warm)

    async def _closed_loop(self) -> None:
        while True:
            scheduled = time.perf_counter_ns()
            warm = self.budget.admit(scheduled)
            if warm is None:
                return
            item, body = self._prepare()
            await self._start(self.budget.issued - 1, scheduled, warm, item, body)

    async def _open_loop(self) -> None:
        plan = self._plan
        slots = asyncio.Semaphore(plan.max_in_flight)
        loop = asyncio.get_running_loop()
        for offset in arrival_offsets(plan):
            scheduled = self._start_ns + int(offset * _NS)
            warm = self.budget.admit(scheduled)
            if warm is None:
                return
            index = self.budget.issued - 1
            item, body = self._prepare()
            await sleep_until(scheduled)
            if slots.locked():
                self._progress.cap_hits += 1
            await slots.acquire()
            # The request is written inside _start, before the task exists: the task only
            # waits for the response, so loop scheduling does not delay the send.
            task = loop.create_task(self._start(index, scheduled, warm, item, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _t: slots.release())

    async def _flush(self) -> None:
        # One emit at a time, in order: the last batch (the cancelled in-flight requests)
        # must never overtake, or interleave with, a periodic one still being sent.
        async with self._emit_lock:
            batch, self._pending = self._pending, []
            await self._sink.emit(batch, self._progress.model_copy())

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            # Shielded: stopping the flusher mid-send must not abandon a half-sent batch
            # (a pipe write runs on in its thread); the final flush waits for it instead.
            self._sending = asyncio.ensure_future(self._flush())
            await asyncio.shield(self._sending)

    async def _drive(self) -> None:
        await sleep_until(self._start_ns)
        if self._plan.loop is LoopKind.CLOSED:
            assert self._plan.concurrency is not None
            n = self._plan.concurrency
            loops = [asyncio.create_task(self._closed_loop()) for _ in range(n)]
            self._tasks.update(loops)
            await asyncio.wait(loops)
        else:
            await self._open_loop()
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    async def run(self) -> WorkerReport:
        """Drive the plan to its end (or a stop) and return the worker's report."""
        # Everything allocated so far (imports, configs) is long-lived: take it out of the
        # collector's generations so a full collection during the load scans only what the
        # load allocates (a full pass over an import-heavy heap stalls the loop ~20-40 ms).
        # No gc.collect() first: it takes as long, and start times are already fixed.
        gc.freeze()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        flusher = asyncio.create_task(self._flusher())
        driver = asyncio.create_task(self._drive())
        stop_wait = asyncio.create_task(self._stop_event.wait())
        cancelled = False
        try:
            timeout = max(0.0, (self.budget.hard_end_ns - time.perf_counter_ns()) / _NS)
            done, _ = await asyncio.wait(
                {driver, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if driver not in done:
                cancelled = stop_wait in done
                self.budget.stop("stopped" if cancelled else "max_seconds")
                await self._cancel_driver(driver)
        except asyncio.CancelledError:
            cancelled = True
            self.budget.stop("stopped")
            await self._cancel_driver(driver)
        finally:
            stop_wait.cancel()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        await self._flush()
        gc.unfreeze()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return WorkerReport(
            worker_id=self._worker_id,
            run_index=self._plan.run_index,
            sent=self._progress.sent,
            completed=self._progress.completed,
            cap_hits=self._progress.cap_hits,
            max_in_flight=self._max_in_flight,
            stop_reason=self.budget.stop_reason or "completed",
            cancelled=cancelled,
            cpu_s=cpu,
            preemptions=ru1.ru_nivcsw - ru0.ru_nivcsw,
            wall_s=time.perf_counter() - wall0,
            pid=os.getpid(),
        )

    async def _cancel_driver(self, driver: asyncio.Task[None]) -> None:
        """Cancel the dispatch and every in-flight request, and wait until they are gone."""
        driver.cancel()
        for task in list(self._tasks):
            task.cancel()
        pending = {driver, *self._tasks}
        await asyncio.wait(pending)
        for requester in self._requesters:
            requester.abandon_all()
