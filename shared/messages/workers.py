"""Remote load-generator workers: work orders (KV), records and lifecycle (stream), heartbeats.

A benchmark with ``worker_nodes`` runs its workers as one batch job; they never talk to the
client service directly, only through NATS:

- the coordinator writes one :class:`WorkOrder` per worker and stage into the
  ``aif_bench_work`` KV bucket (key :func:`order_key`) and a :class:`WorkControl` (key
  :func:`control_key`) to stop or release them; a worker started late still finds both;
- workers publish :class:`WorkerRecords` batches on ``bench.records.<bid>`` and
  :class:`WorkerHello` / :class:`WorkerDone` / :class:`WorkerFailed` on ``bench.worker.<bid>``
  into the ``AIF_BENCH_WORK`` stream, so a coordinator that subscribes late loses nothing and
  reads records and "done" in publication order;
- :class:`WorkerHeartbeat` travels on core NATS (``bench.heartbeat.<bid>``): liveness only.

Payloads that are load-generator types (``WorkerSpec``, ``RequestRecord``, ``WorkerReport``)
travel as plain JSON objects here, because ``shared`` must not import a service; the client
service validates them with its own models on arrival.

Exactly-once accounting: each worker numbers its record batches per stage (``seq`` from 0);
the JetStream ``Nats-Msg-Id`` is :func:`records_msg_id`, so a publish retried after a lost
acknowledgement is dropped by the stream, and the coordinator also drops any (stage, worker,
seq) it has seen. ``WorkerDone`` carries the totals the coordinator must have received.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from aifactory.shared.messages.base import ID_PATTERN, Message, Model

#: Worker index inside the job (SLURM_PROCID, or the local launcher's counter).
WorkerIndex = Annotated[int, Field(ge=0, le=1_000_000)]
Stage = Annotated[int, Field(ge=0, le=10_000)]


def order_key(benchmark_id: str, worker: int) -> str:
    """KV key of ``worker``'s current order (overwritten every stage)."""
    return f"{benchmark_id}.order.{worker}"


def control_key(benchmark_id: str) -> str:
    return f"{benchmark_id}.control"


def records_msg_id(benchmark_id: str, stage: int, worker: int, seq: int) -> str:
    """``Nats-Msg-Id`` of one record batch: stable across retries of the same batch."""
    return f"{benchmark_id}-{stage}-{worker}-{seq}"


class WorkOrder(Model):
    """One worker's share of one stage, and the shared start (wall clock, nanoseconds)."""

    benchmark_id: str = Field(pattern=ID_PATTERN)
    stage: Stage
    worker: WorkerIndex
    start_wall_ns: int = Field(ge=0)
    #: A ``aifactory.loadgen.messages.WorkerSpec`` (API key included: see remote/).
    spec: dict[str, Any]


class WorkControl(Model):
    """``stop``: end the current stage now, report, exit. ``finish``: no more stages, exit."""

    benchmark_id: str = Field(pattern=ID_PATTERN)
    action: Literal["stop", "finish"]


class WorkerRecords(Message):
    """One batch of finished requests of one worker in one stage."""

    kind: Literal["records"] = "records"
    benchmark_id: str = Field(pattern=ID_PATTERN)
    stage: Stage
    worker: WorkerIndex
    seq: int = Field(ge=0)
    #: ``RequestRecord`` objects.
    records: list[dict[str, Any]]
    #: The worker's ``WorkerProgress`` counters at this batch.
    progress: dict[str, Any]


class WorkerHello(Message):
    """A worker process is connected and waiting for orders."""

    kind: Literal["hello"] = "hello"
    benchmark_id: str = Field(pattern=ID_PATTERN)
    worker: WorkerIndex
    host: str = Field(max_length=255)
    pid: int
    job_id: str | None = Field(default=None, max_length=64)


class WorkerDone(Message):
    """A worker finished its share of a stage; the totals are what the coordinator must hold."""

    kind: Literal["done"] = "done"
    benchmark_id: str = Field(pattern=ID_PATTERN)
    stage: Stage
    worker: WorkerIndex
    batches: int = Field(ge=0)
    records: int = Field(ge=0)
    #: The worker's ``WorkerReport``.
    report: dict[str, Any]


class WorkerFailed(Message):
    """A worker cannot go on (bad order, target unreachable, publish failing): why."""

    kind: Literal["failed"] = "failed"
    benchmark_id: str = Field(pattern=ID_PATTERN)
    worker: WorkerIndex
    stage: int | None = None
    reason: str = Field(max_length=4000)


class WorkerHeartbeat(Message):
    """Sent every second by every worker, busy or idle (core NATS, not stored)."""

    kind: Literal["heartbeat"] = "heartbeat"
    benchmark_id: str = Field(pattern=ID_PATTERN)
    worker: WorkerIndex
    stage: int | None = None
    #: The latest ``WorkerProgress`` of the running stage, for live windows.
    progress: dict[str, Any] | None = None


WorkerEvent = Annotated[
    WorkerRecords | WorkerHello | WorkerDone | WorkerFailed, Field(discriminator="kind")
]
#: Decodes anything published into the work stream for one benchmark.
WORKER_EVENT_ADAPTER: TypeAdapter[WorkerEvent] = TypeAdapter(WorkerEvent)
