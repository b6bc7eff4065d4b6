"""What a worker is told (``WorkerSpec``) and what it tells back (progress, records, report).

All of it is serialisable (pydantic models and record dataclasses), because the same worker
runs in-process, as a local child process over a pipe, and later on another node publishing
over NATS. Times in records are relative to the shared run start, which each worker derives
from ``start_wall_ns`` (wall clock) so workers on different hosts line up as well as their
clocks are synchronised; on one host, they share the monotonic clock too.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.shared.workload import BenchConfig


class WorkerSpec(BaseModel):
    """Everything one worker needs: the (resolved) config, its share of the run, its id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: BenchConfig  # ``model`` already resolved by the pre-flight
    plan: RunPlan  # this worker's share
    worker_id: int
    n_workers: int
    #: Flush records and progress this often (seconds).
    flush_s: float = 0.25


class WorkerProgress(BaseModel):
    """Counters a worker sends with every batch of records."""

    model_config = ConfigDict(extra="forbid")

    worker_id: int
    run_index: int
    sent: int = 0
    completed: int = 0
    in_flight: int = 0
    cap_hits: int = 0  # open-loop sends that had to wait for the in-flight cap


class WorkerReport(BaseModel):
    """A worker's closing account of its share."""

    model_config = ConfigDict(extra="forbid")

    worker_id: int
    run_index: int
    sent: int
    completed: int
    cap_hits: int
    max_in_flight: int
    stop_reason: str  # requests | duration | max_seconds | stopped
    cancelled: bool
    cpu_s: float  # user+system CPU of the worker process during the load
    #: Times the OS took the CPU away from the worker (another process wanted it): when
    #: this is high, schedule delays and latencies include the generator's own waiting.
    preemptions: int = 0
    wall_s: float
    pid: int


class RecordSink(Protocol):
    """Where a worker delivers batches of finished records and its counters."""

    async def emit(self, records: list[RequestRecord], progress: WorkerProgress) -> None: ...
