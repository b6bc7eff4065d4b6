"""Which jobs have output to follow: deployed services and benchmarks' workers' jobs.

A service record carries its job's files once submitted (``output_path``, ``error_path``).
A benchmark with ``worker_nodes`` runs its workers as one batch job named
``aif-bench-<id>`` whose id is in no registry: it is found by name through the executor
(one query per such benchmark until found), and its files follow SLURM's naming in the
benchmark's job folder. Both end when their record says so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aifactory.logs.shipper import JobSpec
from aifactory.shared.bus.topology import LOGS_MAX_AGE
from aifactory.shared.executors.base import Executor, ExecutorError
from aifactory.shared.executors.files import job_output_paths
from aifactory.shared.messages import LogStream
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


def too_old(ended: datetime | None, now: datetime | None = None) -> bool:
    """Ended longer ago than the logs stream keeps anything: not worth reading back."""
    if ended is None:
        return False
    now = now or datetime.now(UTC)
    return now - ended > timedelta(seconds=LOGS_MAX_AGE)


def service_job(record: ServiceRecord) -> JobSpec | None:
    """The job of a service record, or ``None`` when its output is not ours to follow."""
    if too_old(record.ended):
        return None
    paths = {}
    if record.output_path:
        paths[LogStream.OUT] = Path(record.output_path)
    if record.error_path:
        paths[LogStream.ERR] = Path(record.error_path)
    ended = None
    if record.state.is_terminal:
        ended = (record.job_state or record.state).value
    return JobSpec(service_id=record.service_id, job_id=record.job_id, paths=paths, ended=ended)


class BenchJobs:
    """Finds the workers' job of each benchmark that has one, by its deterministic name.

    The names come from the load generator's job module, imported on first use: the load
    generator's package is heavy (Arrow, NumPy), and a logs service of a stack that never
    runs workers on other nodes should not pay for it at every (re)start.
    """

    @staticmethod
    def log_id(benchmark_id: str) -> str:
        from aifactory.loadgen.remote.job import log_id

        return log_id(benchmark_id)

    def __init__(self, executor: Executor, settings: Settings) -> None:
        self.executor = executor
        self.settings = settings
        self.job_ids: dict[str, str] = {}

    @staticmethod
    def has_job(record: BenchmarkRecord) -> bool:
        return record.workload.worker_nodes is not None and not too_old(
            record.updated if record.state.is_terminal else None
        )

    async def spec(self, record: BenchmarkRecord) -> JobSpec | None:
        """The job as far as known (no files until the scheduler has it); ``None`` for a
        benchmark whose workers run inside the client service."""
        if not self.has_job(record):
            return None
        from aifactory.loadgen.remote.job import job_name, job_workdir, log_id

        benchmark_id = record.benchmark_id
        job_id = self.job_ids.get(benchmark_id)
        if job_id is None:
            try:
                found = await self.executor.find_by_name(job_name(benchmark_id))
            except ExecutorError as exc:
                log.warning("cannot look up the workers' job of %s: %s", benchmark_id, exc)
                found = []
            if found:
                job_id = self.job_ids[benchmark_id] = found[-1]
        ended = record.state.value if record.state.is_terminal else None
        if job_id is None:
            # Not found (yet): a finished benchmark whose job is gone has no output to wait for.
            return JobSpec(log_id(benchmark_id), ended=ended) if ended else None
        out, err = job_output_paths(
            job_workdir(self.settings, benchmark_id), job_name(benchmark_id), job_id
        )
        return JobSpec(
            service_id=log_id(benchmark_id),
            job_id=job_id,
            paths={LogStream.OUT: out, LogStream.ERR: err},
            ended=ended,
        )
