"""Is the owner of a folder still live? The registry and the scheduler, asked once each.

A folder is ``ended`` only on positive evidence: its registry record is in an end state and
the scheduler lists none of its jobs as live, or (no record) the scheduler gives every job
of the folder a definite end state, or (benchmark results) the run wrote its summary. Any
sign of life wins over every sign of an end. Everything else is ``unknown`` and kept: a job
SLURM has forgotten without accounting (``vanished``) may have ended long ago, or may be
another cluster's; gc does not guess.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from aifactory.loadgen.remote.job import job_name as workers_job_name
from aifactory.loadgen.results import SUMMARY_FILE
from aifactory.shared.executors.base import Executor, ExecutorError, JobStatus
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.states import JobState

#: Workers' job folders are ``aif-bench-<benchmark id>`` (see ``loadgen/remote/job.py``).
WORKERS_PREFIX = workers_job_name("")


class FolderState(StrEnum):
    LIVE = "live"
    ENDED = "ended"
    UNKNOWN = "unknown"
    #: Not a folder gc manages: a link, a plain file, an unreadable folder.
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Evidence:
    state: FolderState
    reason: str
    #: When the owner ended, if a record says (epoch seconds).
    ended_at: float | None = None


@dataclass
class Registries:
    """A snapshot of both registries; ``None`` where it could not be read (and why)."""

    services: dict[str, ServiceRecord] | None = None
    benchmarks: dict[str, BenchmarkRecord] | None = None
    error: str | None = None

    @classmethod
    async def read(
        cls,
        services: KVRegistry[ServiceRecord] | None,
        benchmarks: KVRegistry[BenchmarkRecord] | None,
    ) -> Registries:
        return cls(
            services={r.service_id: r for r in await services.all()} if services else None,
            benchmarks={r.benchmark_id: r for r in await benchmarks.all()} if benchmarks else None,
        )

    @classmethod
    def unavailable(cls, why: str) -> Registries:
        return cls(error=why)

    def missing(self, which: str) -> str:
        """Why no record vouches for a folder (the plan's notes say why the registry was not
        read, once, rather than every row)."""
        return f"{which} registry not read" if self.error else f"no {which} record"


@dataclass
class Scheduler:
    """Every job id of every folder, asked in one ``states`` call."""

    states: dict[str, JobStatus] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    async def ask(cls, executor: Executor | None, job_ids: Sequence[str]) -> Scheduler:
        wanted = list(dict.fromkeys(job_ids))
        if executor is None:
            return cls(error="no executor to ask")
        if not wanted:
            return cls()
        try:
            return cls(states=await executor.states(wanted))
        except ExecutorError as exc:
            return cls(error=f"the scheduler did not answer: {exc}")

    def live(self, ids: Sequence[str]) -> list[JobStatus]:
        return [s for i in ids if (s := self.states.get(i)) and not s.state.is_terminal]

    def definitely_ended(self, ids: Sequence[str]) -> bool:
        """Every id known to have ended (``vanished`` is not knowledge)."""
        found = [self.states.get(i) for i in ids]
        return bool(ids) and all(
            s is not None and s.state.is_terminal and s.state is not JobState.VANISHED
            for s in found
        )

    def describe(self, ids: Sequence[str]) -> str:
        if self.error:
            return self.error
        if not ids:
            return "no job id in the folder"
        parts = []
        for job_id in ids:
            status = self.states.get(job_id)
            if status is None:
                parts.append(f"job {job_id} not asked")
            else:
                why = f" ({status.reason})" if status.reason else ""
                parts.append(f"job {job_id} {status.state.value}{why}")
        return "; ".join(parts)


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def job_folder(
    name: str, ids: Sequence[str], registries: Registries, scheduler: Scheduler
) -> Evidence:
    """A job folder: ``<service id>`` (a deployed service) or ``aif-bench-<id>`` (workers)."""
    record: ServiceRecord | BenchmarkRecord | None = None
    if name.startswith(WORKERS_PREFIX):
        kind = "benchmark"
        if registries.benchmarks is not None:
            record = registries.benchmarks.get(name[len(WORKERS_PREFIX) :])
    else:
        kind = "service"
        if registries.services is not None:
            record = registries.services.get(name)
    if isinstance(record, ServiceRecord) and record.job_id:
        ids = [*ids, record.job_id] if record.job_id not in ids else ids
    live = scheduler.live(ids)
    if live:
        jobs = ", ".join(f"job {s.job_id} {s.state.value}" for s in live)
        return Evidence(FolderState.LIVE, f"scheduler: {jobs}")
    if record is not None and not record.state.is_terminal:
        return Evidence(FolderState.LIVE, f"registry: {kind} {record.state.value}")
    if record is not None:
        ended = record.ended if isinstance(record, ServiceRecord) else record.updated
        return Evidence(FolderState.ENDED, f"registry: {kind} {record.state.value}", _epoch(ended))
    if scheduler.definitely_ended(ids):
        return Evidence(FolderState.ENDED, f"scheduler: {scheduler.describe(ids)}")
    return Evidence(FolderState.UNKNOWN, f"{registries.missing(kind)}; {scheduler.describe(ids)}")


def results_folder(name: str, path: Path, registries: Registries) -> Evidence:
    """A benchmark's results folder, named by its benchmark id."""
    table = registries.benchmarks
    record = table.get(name) if table is not None else None
    if record is not None and not record.state.is_terminal:
        return Evidence(FolderState.LIVE, f"registry: benchmark {record.state.value}")
    if record is not None:
        return Evidence(
            FolderState.ENDED, f"registry: benchmark {record.state.value}", _epoch(record.updated)
        )
    summary = path / SUMMARY_FILE
    with contextlib.suppress(OSError):
        if summary.is_file() and not summary.is_symlink():
            # The client writes the summary last: the run is over, whoever ran it.
            return Evidence(FolderState.ENDED, f"{SUMMARY_FILE} written (the run is over)")
    return Evidence(
        FolderState.UNKNOWN, f"{registries.missing('benchmark')} and no {SUMMARY_FILE} yet"
    )


def all_ids(folders: Mapping[str, Sequence[str]], registries: Registries) -> list[str]:
    """Every job id to ask the scheduler about: the folders' and their records'."""
    ids = [i for found in folders.values() for i in found]
    if registries.services is not None:
        ids += [r.job_id for name, r in registries.services.items() if name in folders and r.job_id]
    return list(dict.fromkeys(ids))
