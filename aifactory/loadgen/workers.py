"""Workers: the reusable entry (:func:`run_worker`) and local child processes over pipes.

``run_worker`` (:func:`prepared_worker`, then :meth:`PreparedWorker.run`) is what any
worker runs, wherever it is: in-process (``workers=1``), in a
child process started here, or on another node (a SLURM worker publishing over NATS gives it
its own :class:`RecordSink`). Child processes are *spawned* (not forked: the parent may hold
an event loop, threads and sockets) and talk orjson messages over a duplex pipe:

    worker → parent  {"t": "ready"} | {"t": "batch", "progress": {...}, "records": [...]}
                     | {"t": "report", "report": {...}} | {"t": "error", "message": "..."}
    parent → worker  {"t": "start", "start_wall_ns": N} | {"t": "stop"}

The shared start is a wall-clock instant each worker maps onto its own monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import resource
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop

from aifactory.loadgen.backends import BACKENDS, backend_class
from aifactory.loadgen.datasets.tokens import TokenCounter
from aifactory.loadgen.drivers import Driver, driver_for
from aifactory.loadgen.engine import LoadEngine
from aifactory.loadgen.errors import WorkerError
from aifactory.loadgen.messages import RecordSink, WorkerProgress, WorkerReport, WorkerSpec
from aifactory.loadgen.metrics.records import RECORDS_ADAPTER, RequestRecord
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.strict import WIRE

#: How long spawned workers may take to import and get ready.
READY_TIMEOUT_S = 60.0
#: Lead time between "all ready" and the shared start, so every worker starts on time.
START_LEAD_S = 0.05
#: After a stop, how long workers get to send their last records before being killed.
STOP_GRACE_S = 10.0


def raise_fd_limit(needed: int) -> None:
    """Open-loop runs hold one socket per request in flight: lift the soft fd limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def spec_json(spec: WorkerSpec) -> str:
    """The spec for a child process, API key included (any other dump masks it)."""
    return spec.model_dump_json(context=WIRE)


def start_ns_from_wall(start_wall_ns: int) -> int:
    """Map a wall-clock instant onto this process's monotonic (perf_counter) clock."""
    return time.perf_counter_ns() + (start_wall_ns - time.time_ns())


class PreparedWorker:
    """A worker with its data loaded and its endpoints open, ready to start on time."""

    def __init__(self, spec: WorkerSpec, driver: Driver, clients: list[HttpClient]) -> None:
        self.spec = spec
        self.driver = driver
        self.clients = clients

    async def run(
        self, sink: RecordSink, stop_event: asyncio.Event, *, start_ns: int
    ) -> WorkerReport:
        engine = LoadEngine(
            self.spec.plan,
            driver=self.driver,
            clients=self.clients,
            sink=sink,
            start_ns=start_ns,
            worker_id=self.spec.worker_id,
            stop_event=stop_event,
            flush_s=self.spec.flush_s,
        )
        return await engine.run()


@contextlib.asynccontextmanager
async def prepared_worker(
    spec: WorkerSpec, token_counter: TokenCounter | None = None
) -> AsyncIterator[PreparedWorker]:
    """Load what the worker's requests need (prompts; vectors, ground truth, collection
    routes) and open its HTTP clients, *before* the shared start, so that the first
    scheduled sends are on time however long loading takes."""
    cfg = spec.config
    api_key = cfg.api_key.get_secret_value() if cfg.api_key else None
    raise_fd_limit(spec.plan.pool_size)
    cls = backend_class(cfg.backend)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                HttpClient(cls.base_url(url), timeout_s=cfg.request_timeout_s, api_key=api_key)
            )
            for url in cfg.targets
        ]
        driver = await driver_for(cls).for_worker(spec, clients, token_counter)
        yield PreparedWorker(spec, driver, clients)


async def run_worker(
    spec: WorkerSpec,
    sink: RecordSink,
    stop_event: asyncio.Event,
    *,
    start_ns: int,
    token_counter: TokenCounter | None = None,
) -> WorkerReport:
    """Run one worker's share of a run to its end (or a stop); records go to ``sink``.

    Loading happens first: a caller that can, prepares with :func:`prepared_worker` before
    choosing ``start_ns`` (local workers do).
    """
    async with prepared_worker(spec, token_counter) as worker:
        return await worker.run(sink, stop_event, start_ns=start_ns)


# ----------------------------------------------------------------- child process side


class _PipeSink:
    """Sends batches to the parent from a thread, so a full pipe never stalls the loop."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def emit(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
        data = orjson.dumps({"t": "batch", "progress": progress.model_dump(), "records": records})
        await asyncio.to_thread(self._conn.send_bytes, data)


async def _child_main(spec: WorkerSpec, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    started: asyncio.Future[int] = loop.create_future()

    def on_message() -> None:
        try:
            msg = orjson.loads(conn.recv_bytes())
        except EOFError:  # the parent is gone: stop, nobody will read the results
            loop.remove_reader(conn.fileno())
            stop_event.set()
            if not started.done():
                started.set_result(time.perf_counter_ns())
            return
        if msg["t"] == "start" and not started.done():
            started.set_result(start_ns_from_wall(msg["start_wall_ns"]))
        elif msg["t"] == "stop":
            stop_event.set()
            if not started.done():
                started.set_result(time.perf_counter_ns())

    async with prepared_worker(spec) as worker:
        loop.add_reader(conn.fileno(), on_message)
        conn.send_bytes(orjson.dumps({"t": "ready"}))
        start_ns = await started
        report = await worker.run(_PipeSink(conn), stop_event, start_ns=start_ns)
    loop.remove_reader(conn.fileno())
    conn.send_bytes(orjson.dumps({"t": "report", "report": report.model_dump()}))


def worker_process_main(
    spec_json: str, conn: Connection, extension_modules: Sequence[str] = ()
) -> None:
    """Entry point of a spawned worker process.

    ``extension_modules`` are the modules that registered backends in the parent (a
    spawned child starts from a fresh interpreter): importing them gives the child the same
    registry, including backends defined outside this package.
    """
    # Ctrl-C reaches the whole process group: the parent turns it into a graceful stop
    # message; a worker dying of KeyboardInterrupt would lose its records instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for module in extension_modules:
            if module != "__main__":
                importlib.import_module(module)
        spec = WorkerSpec.model_validate_json(spec_json)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_child_main(spec, conn))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send_bytes(orjson.dumps({"t": "error", "message": f"{type(exc).__name__}: {exc}"}))
        raise
    finally:
        conn.close()


# ----------------------------------------------------------------- parent side


class _Child:
    def __init__(self, spec: WorkerSpec, process: Any, conn: Connection) -> None:
        self.spec = spec
        self.process = process
        self.conn = conn
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.report: asyncio.Future[WorkerReport] = asyncio.get_running_loop().create_future()


class ProcessWorkers:
    """Runs worker specs as spawned processes, relaying their batches to ``on_batch``."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        on_batch: Callable[[list[RequestRecord], WorkerProgress], None],
    ) -> None:
        self._specs = specs
        self._on_batch = on_batch

    def _on_readable(self, child: _Child) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = child.conn.recv_bytes()
        except (EOFError, OSError):
            loop.remove_reader(child.conn.fileno())
            exc = WorkerError(
                f"worker {child.spec.worker_id} (pid {child.process.pid}) exited "
                f"without a report (exit code {child.process.exitcode})"
            )
            for fut in (child.ready, child.report):
                if not fut.done():
                    fut.set_exception(exc)
            return
        msg = orjson.loads(data)
        kind = msg["t"]
        if kind == "batch":
            self._on_batch(
                RECORDS_ADAPTER.validate_python(msg["records"]),
                WorkerProgress.model_validate(msg["progress"]),
            )
        elif kind == "ready":
            child.ready.set_result(None)
        elif kind == "report":
            loop.remove_reader(child.conn.fileno())
            child.report.set_result(WorkerReport.model_validate(msg["report"]))
        elif kind == "error":
            exc = WorkerError(f"worker {child.spec.worker_id} failed: {msg['message']}")
            for fut in (child.ready, child.report):
                if not fut.done():
                    fut.set_exception(exc)

    async def run(self, stop_event: asyncio.Event) -> list[WorkerReport]:
        """Start all, wait until all are ready, start them together, collect their reports."""
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        children: list[_Child] = []
        try:
            for spec in self._specs:
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                proc = ctx.Process(
                    target=worker_process_main,
                    args=(spec_json(spec), child_conn, BACKENDS.modules()),
                    name=f"loadgen-worker-{spec.worker_id}",
                    daemon=True,
                )
                proc.start()
                child_conn.close()
                child = _Child(spec, proc, parent_conn)
                children.append(child)
                loop.add_reader(parent_conn.fileno(), self._on_readable, child)
            await asyncio.wait_for(
                asyncio.gather(*(c.ready for c in children)), timeout=READY_TIMEOUT_S
            )
            start_wall_ns = time.time_ns() + int(START_LEAD_S * 1e9)
            start = orjson.dumps({"t": "start", "start_wall_ns": start_wall_ns})
            for child in children:
                child.conn.send_bytes(start)
            reports = asyncio.gather(*(c.report for c in children))
            stop_wait = asyncio.ensure_future(stop_event.wait())
            waiting: set[asyncio.Future[Any]] = {reports, stop_wait}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if reports not in done:
                for child in children:
                    with contextlib.suppress(OSError):
                        child.conn.send_bytes(orjson.dumps({"t": "stop"}))
                await asyncio.wait_for(asyncio.shield(reports), timeout=STOP_GRACE_S)
            stop_wait.cancel()
            return list(await reports)
        except TimeoutError as exc:
            raise WorkerError(
                f"worker processes did not answer within {READY_TIMEOUT_S:.0f}s / "
                f"{STOP_GRACE_S:.0f}s"
            ) from exc
        finally:
            await self._reap(children)

    async def _reap(self, children: list[_Child]) -> None:
        loop = asyncio.get_running_loop()
        for child in children:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(child.conn.fileno())
            if child.process.is_alive():  # a failure elsewhere: let it wind down first
                with contextlib.suppress(OSError):
                    child.conn.send_bytes(orjson.dumps({"t": "stop"}))
            for fut in (child.ready, child.report):
                if fut.done() and not fut.cancelled():
                    fut.exception()  # retrieved: an unobserved failure is logged noise
                elif not fut.done():
                    fut.cancel()
            await asyncio.to_thread(child.process.join, 5.0)
            if child.process.is_alive():
                child.process.kill()
                await asyncio.to_thread(child.process.join, 5.0)
            child.conn.close()
