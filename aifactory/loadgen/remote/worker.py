"""``aifactory bench worker``: one load-generator worker of a job, reporting over NATS.

Why this shape: a worker on a compute node knows only its benchmark id and its index in the
job (``SLURM_PROCID`` under srun, ``AIFACTORY_WORKER_ID`` from the local launcher). Its
orders come from the ``aif_bench_work`` KV bucket, so neither the spec nor the target's API
key ever appears on a command line, and a worker that starts late still finds them. It then
loops: wait for an order of a stage it has not run, run :func:`run_worker` from the shared
start instant, publish its records in numbered batches, publish ``WorkerDone`` with the
totals; until the coordinator writes ``finish`` or ``stop`` or the job is cancelled
(SIGTERM). A stop in the middle of a stage cancels in-flight requests (recorded as
``cancelled``) and still publishes every record and the report before exiting 0.

Every publish waits for the stream's acknowledgement (retried with the same
``Nats-Msg-Id``), so "done" is only sent once every batch before it is stored. A worker
that cannot go on publishes ``WorkerFailed`` with the reason and exits 1, which ends the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

import nats
import uvloop
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aifactory.loadgen.remote import protocol
from aifactory.loadgen.remote.protocol import (
    WorkControl,
    WorkerDone,
    WorkerFailed,
    WorkerHeartbeat,
    WorkerHello,
    WorkOrder,
    control_key,
    order_key,
)
from aifactory.loadgen.remote.sink import (
    BUS_LOSS_LIMIT_S,
    PUBLISH_TIMEOUT_S,
    BusLoss,
    NatsRecordSink,
    Publisher,
    WorkerFailure,
)
from aifactory.loadgen.workers import run_worker, start_ns_from_wall
from aifactory.shared.bus.connect import nats_options
from aifactory.shared.channel import subject_token
from aifactory.shared.credentials import CredentialsError
from aifactory.shared.settings import Settings

log = logging.getLogger("aifactory.bench.worker")

HEARTBEAT_S = 1.0
CONNECT_TIMEOUT_S = 10.0


def resolve_worker_index(explicit: int | None, env: Mapping[str, str] = os.environ) -> int:
    """``--worker-id``, else ``AIFACTORY_WORKER_ID`` (local launcher), else ``SLURM_PROCID``.

    The local executor sets ``SLURM_PROCID=0`` for the whole script, so the launcher's own
    variable must win over it.
    """
    if explicit is not None:
        return explicit
    for name in ("AIFACTORY_WORKER_ID", "SLURM_PROCID"):
        value = env.get(name)
        if value is not None:
            if not value.isdigit():
                raise WorkerFailure(f"{name}={value!r} is not a worker index")
            return int(value)
    raise WorkerFailure("no worker index: pass --worker-id or run under srun (SLURM_PROCID)")


class Orders:
    """Follows this worker's order key and the benchmark's control key (KV watches)."""

    def __init__(self, kv: KeyValue, benchmark_id: str, worker: int) -> None:
        self.kv = kv
        self.benchmark_id = benchmark_id
        self.worker = worker
        self.order: WorkOrder | None = None
        self.control: WorkControl | None = None
        self.changed = asyncio.Event()
        self.error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[Any] = []

    async def start(self) -> None:
        keys = [order_key(self.benchmark_id, self.worker), control_key(self.benchmark_id)]
        for key, apply in zip(keys, (self._set_order, self._set_control), strict=True):
            watcher = await self.kv.watch(key)
            self._watchers.append(watcher)
            self._tasks.append(asyncio.create_task(self._pump(watcher, apply)))

    async def _pump(self, watcher: Any, apply: Callable[[bytes], None]) -> None:
        async for entry in watcher:
            if entry is None or entry.value is None or entry.operation is not None:
                continue  # end-of-history marker, delete or purge
            try:
                apply(entry.value)
            except ValidationError as exc:
                self.error = f"unreadable entry {entry.key}: {exc}"
            self.changed.set()

    async def refresh_order(self) -> None:
        """Read the order key directly: the two watches do not keep the keys' write order,
        so a stop may be seen before the order written just before it."""
        try:
            entry = await self.kv.get(order_key(self.benchmark_id, self.worker))
        except KeyNotFoundError:
            return
        if entry.value:
            self._set_order(entry.value)

    def _set_order(self, data: bytes) -> None:
        order = WorkOrder.model_validate_json(data)
        if self.order is None or order.stage > self.order.stage:
            self.order = order

    def _set_control(self, data: bytes) -> None:
        self.control = WorkControl.model_validate_json(data)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()


async def _wait_either(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class RemoteWorker:
    """One worker's life: hello, stages on order, heartbeats, a clean exit."""

    def __init__(
        self,
        nc: NatsClient,
        kv: KeyValue,
        benchmark_id: str,
        worker: int,
        loss: BusLoss | None = None,
    ) -> None:
        self.nc = nc
        self.benchmark_id = benchmark_id
        self.worker = worker
        self.loss = loss or BusLoss()
        js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.publisher = Publisher(js, benchmark_id, worker, self.loss)
        self.orders = Orders(kv, benchmark_id, worker)
        self.stop = asyncio.Event()
        self.stage: int | None = None
        self.sink: NatsRecordSink | None = None

    def _stop_requested(self) -> bool:
        control = self.orders.control
        return self.stop.is_set() or (control is not None and control.action == "stop")

    async def _heartbeats(self) -> None:
        subject = protocol.BENCH_HEARTBEAT.subject(benchmark_id=self.benchmark_id)
        while True:
            progress = self.sink.progress if self.sink is not None else None
            beat = WorkerHeartbeat(
                benchmark_id=self.benchmark_id,
                worker=self.worker,
                stage=self.stage,
                progress=progress,
            )
            with contextlib.suppress(NatsError):
                await self.nc.publish(subject, beat.model_dump_json().encode())
            await asyncio.sleep(HEARTBEAT_S)

    async def run(self) -> int:
        await self.orders.start()
        await self.publisher.event(
            WorkerHello(
                benchmark_id=self.benchmark_id,
                worker=self.worker,
                host=socket.gethostname(),
                pid=os.getpid(),
                job_id=os.environ.get("SLURM_JOB_ID"),
            )
        )
        beats = asyncio.create_task(self._heartbeats())
        watchdog = asyncio.create_task(self.loss.watch())
        try:
            return await self._loop()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the coordinator must hear why
            reason = f"{type(exc).__name__}: {exc}"
            log.error("worker %s failed: %s", self.worker, reason)
            with contextlib.suppress(WorkerFailure, NatsError):
                await self.publisher.event(
                    WorkerFailed(
                        benchmark_id=self.benchmark_id,
                        worker=self.worker,
                        stage=self.stage,
                        reason=reason[:4000],
                    )
                )
            return 1
        finally:
            beats.cancel()
            watchdog.cancel()
            await self.orders.close()

    async def _loop(self) -> int:
        last_stage = -1
        while True:
            if self.orders.error is not None:
                raise WorkerFailure(self.orders.error)
            if self.loss.expired.is_set():
                raise WorkerFailure(self.loss.reason)
            if self._stop_requested() or self.orders.control is not None:
                # A stage ordered just before the stop must still be reported (empty,
                # cancelled): the coordinator waits for every participant's account.
                await self.orders.refresh_order()
            order = self.orders.order
            if order is not None and order.stage > last_stage:
                await self._run_stage(order)  # returns at once when already stopped
                last_stage = order.stage
                continue
            if self._stop_requested() or self.orders.control is not None:
                log.info("worker %s: %s", self.worker, "stopping" if self.stop.is_set() else "done")
                return 0
            self.orders.changed.clear()
            await _wait_either(self.orders.changed, self.stop, self.loss.expired)

    async def _run_stage(self, order: WorkOrder) -> None:
        spec = order.spec
        self.stage, self.sink = order.stage, NatsRecordSink(self.publisher, order.stage)
        run_stop = asyncio.Event()

        async def relay_stop() -> None:
            while not self._stop_requested() and not self.loss.expired.is_set():
                self.orders.changed.clear()
                await _wait_either(self.orders.changed, self.stop, self.loss.expired)
            run_stop.set()

        relay = asyncio.create_task(relay_stop())
        try:
            start_ns = start_ns_from_wall(order.start_wall_ns)
            report = await run_worker(spec, self.sink, run_stop, start_ns=start_ns)
            await self.sink.drain()
        finally:
            relay.cancel()
        if self.loss.expired.is_set():
            raise WorkerFailure(self.loss.reason)
        await self.publisher.event(
            WorkerDone(
                benchmark_id=self.benchmark_id,
                stage=order.stage,
                worker=self.worker,
                batches=self.sink.batches,
                records=self.sink.records,
                report=report,
            )
        )
        log.info(
            "worker %s stage %s: %s records in %s batches (%s)",
            self.worker,
            order.stage,
            self.sink.records,
            self.sink.batches,
            report.stop_reason,
        )
        self.stage = None


async def serve(
    benchmark_id: str,
    worker: int,
    nats_url: str,
    auth: dict[str, Any],
    bus_loss_limit_s: float = BUS_LOSS_LIMIT_S,
) -> int:
    """Connect, work until released or stopped, disconnect. Returns the exit code."""
    loss = BusLoss(bus_loss_limit_s)
    try:
        nc = await nats.connect(
            nats_url,
            **auth,
            name=f"aifactory-bench-worker-{benchmark_id}-{worker}",
            connect_timeout=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=-1,  # BusLoss decides when to give up, and says so
            reconnect_time_wait=0.5,
            disconnected_cb=loss.disconnected,
            reconnected_cb=loss.reconnected,
        )
    except (OSError, NatsError, TimeoutError) as exc:
        log.error("worker %s: cannot connect to NATS at %s: %r", worker, nats_url, exc)
        return 1
    try:
        try:
            kv = await nc.jetstream().key_value(protocol.BENCH_WORK_BUCKET)
        except NatsError as exc:
            log.error("worker %s: no work bucket %s: %r", worker, protocol.BENCH_WORK_BUCKET, exc)
            return 1
        remote = RemoteWorker(nc, kv, benchmark_id, worker, loss)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, remote.stop.set)
        log.info("worker %s of benchmark %s on %s", worker, benchmark_id, socket.gethostname())
        return await remote.run()
    finally:
        with contextlib.suppress(NatsError, OSError):
            await nc.drain()


def worker_main(benchmark_id: str, *, nats_url: str | None, worker: int | None) -> int:
    """Entry of ``aifactory bench worker``: settings from ``AIFACTORY_*``, never argv secrets."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        subject_token(benchmark_id)
        index = resolve_worker_index(worker)
    except (ValueError, WorkerFailure) as exc:
        log.error("%s", exc)
        return 2
    settings = Settings()
    try:
        auth = nats_options(settings)  # the job's secrets file, read once, at start
    except CredentialsError as exc:
        log.error("worker %s: %s", index, exc)
        return 2
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        url = nats_url or settings.nats_url
        return runner.run(serve(benchmark_id, index, url, auth, settings.worker_bus_loss_limit))
