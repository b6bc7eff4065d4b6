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

This protocol belongs to the load generator (its types, ``WorkerSpec``, ``RequestRecord``,
``WorkerReport``, travel as they are); its channels are declared here, beside the services'
ones in ``aifactory.shared.subjects``, and the AsyncAPI document lists both.

Exactly-once accounting: each worker numbers its record batches per stage (``seq`` from 0);
the JetStream ``Nats-Msg-Id`` is :func:`records_msg_id`, so a publish retried after a lost
acknowledgement is dropped by the stream, and the coordinator also drops any (stage, worker,
seq) it has seen. ``WorkerDone`` carries the totals the coordinator must have received.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field, RootModel, TypeAdapter

from aifactory.loadgen.messages import WorkerProgress, WorkerReport, WorkerSpec
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.shared.channel import Channel, Component, Kind, channel
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


BID = Field(pattern=ID_PATTERN, description="The benchmark.")
STAGE = Field(description="Stage (sweep step) index, from 0.")
WORKER = Field(description="Worker index inside the job (SLURM_PROCID or the launcher's).")


class WorkOrder(Model):
    """One worker's share of one stage, and the shared start (wall clock, nanoseconds)."""

    benchmark_id: str = BID
    stage: Stage = STAGE
    worker: WorkerIndex = WORKER
    start_wall_ns: int = Field(ge=0, description="When every worker starts (wall clock, ns).")
    spec: WorkerSpec = Field(description="Its share; the API key inside travels (WIRE dump).")


class WorkControl(Model):
    """``stop``: end the current stage now, report, exit. ``finish``: no more stages, exit."""

    benchmark_id: str = BID
    action: Literal["stop", "finish"] = Field(description="What every worker must do now.")


class WorkerRecords(Message):
    """One batch of finished requests of one worker in one stage."""

    kind: Literal["records"] = Field(default="records", description="Discriminator.")
    benchmark_id: str = BID
    stage: Stage = STAGE
    worker: WorkerIndex = WORKER
    seq: int = Field(ge=0, description="Batch number in this stage, from 0, without gaps.")
    records: list[RequestRecord] = Field(description="Finished requests, in completion order.")
    progress: WorkerProgress = Field(description="The worker's counters at this batch.")


class WorkerHello(Message):
    """A worker process is connected and waiting for orders."""

    kind: Literal["hello"] = Field(default="hello", description="Discriminator.")
    benchmark_id: str = BID
    worker: WorkerIndex = WORKER
    host: str = Field(max_length=255, description="Where it runs.")
    pid: int = Field(description="Its process id there.")
    job_id: str | None = Field(default=None, max_length=64, description="Its batch job.")


class WorkerDone(Message):
    """A worker finished its share of a stage; the totals are what the coordinator must hold."""

    kind: Literal["done"] = Field(default="done", description="Discriminator.")
    benchmark_id: str = BID
    stage: Stage = STAGE
    worker: WorkerIndex = WORKER
    batches: int = Field(ge=0, description="Record batches it published in the stage.")
    records: int = Field(ge=0, description="Records in those batches.")
    report: WorkerReport = Field(description="Its closing account (stop reason, CPU, …).")


class WorkerFailed(Message):
    """A worker cannot go on (bad order, target unreachable, publish failing): why."""

    kind: Literal["failed"] = Field(default="failed", description="Discriminator.")
    benchmark_id: str = BID
    worker: WorkerIndex = WORKER
    stage: int | None = Field(default=None, description="The stage it failed in, if any.")
    reason: str = Field(max_length=4000, description="What went wrong.")


class WorkerHeartbeat(Message):
    """Sent every second by every worker, busy or idle (core NATS, not stored)."""

    kind: Literal["heartbeat"] = Field(default="heartbeat", description="Discriminator.")
    benchmark_id: str = BID
    worker: WorkerIndex = WORKER
    stage: int | None = Field(default=None, description="The stage it runs, if any.")
    progress: WorkerProgress | None = Field(
        default=None, description="The latest counters of the running stage, for live windows."
    )


class WorkerLifecycle(
    RootModel[Annotated[WorkerHello | WorkerDone | WorkerFailed, Field(discriminator="kind")]]
):
    """What travels on ``bench.worker.<bid>``: one of hello, done, failed (by ``kind``)."""


WorkerEvent = Annotated[
    WorkerRecords | WorkerHello | WorkerDone | WorkerFailed, Field(discriminator="kind")
]
#: Decodes anything published into the work stream for one benchmark.
WORKER_EVENT_ADAPTER: TypeAdapter[WorkerEvent] = TypeAdapter(WorkerEvent)


# -- where they travel ---------------------------------------------------------------------

#: Records and lifecycle, one stream of their own: a big run's records must not evict events.
BENCH_WORK_STREAM: Final = "AIF_BENCH_WORK"
#: Work orders and the control key, read by workers started at any time.
BENCH_WORK_BUCKET: Final = "aif_bench_work"

BENCH_RECORDS = channel(
    "bench.records.{benchmark_id}",
    WorkerRecords,
    Kind.EVENT,
    by={Component.WORKER},
    to={Component.CLIENT},
    stream=BENCH_WORK_STREAM,
    about="A batch of finished requests of one worker in one stage (deduplicated by seq).",
)
BENCH_WORKER = channel(
    "bench.worker.{benchmark_id}",
    WorkerLifecycle,
    Kind.EVENT,
    by={Component.WORKER},
    to={Component.CLIENT},
    stream=BENCH_WORK_STREAM,
    about="Worker lifecycle: hello, stage done (with the totals), failed (with why).",
)
BENCH_HEARTBEAT = channel(
    "bench.heartbeat.{benchmark_id}",
    WorkerHeartbeat,
    Kind.EVENT,
    by={Component.WORKER},
    to={Component.CLIENT},
    stream=None,
    about="Liveness every second, with the running stage's counters (core NATS, not stored).",
)
CHANNELS = (BENCH_RECORDS, BENCH_WORKER, BENCH_HEARTBEAT)


def common_filter(*channels: Channel[Any], **params: str) -> str:
    """One NATS filter matching the subjects of ``channels`` (same length, differing tokens
    become ``*``): one ordered consumer over them keeps their publication order."""
    split = [c.subject(**params).split(".") for c in channels]
    if len({len(tokens) for tokens in split}) != 1:
        raise ValueError("channels of different lengths have no common filter")
    return ".".join(t[0] if len(set(t)) == 1 else "*" for t in zip(*split, strict=True))


def bench_work_filter(benchmark_id: str) -> str:
    """Both stored channels of one benchmark: records and lifecycle, in order."""
    return common_filter(BENCH_RECORDS, BENCH_WORKER, benchmark_id=benchmark_id)
