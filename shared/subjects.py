"""Every bus subject and stream name, in one place (design.md §3).

Services never spell a subject inline: a rename is one edit here, and a typo is an
``AttributeError`` at import time rather than a message published into the void.
"""

from __future__ import annotations

import re
from typing import Final

from aifactory.shared.states import JobState

# Commands (consumed by exactly one service through a durable consumer).
DEPLOY_REQUESTED: Final = "deploy.requested"
DEPLOY_CANCEL: Final = "deploy.cancel"
BENCH_REQUESTED: Final = "bench.requested"
BENCH_CANCEL: Final = "bench.cancel"

# Events (fan-out; anyone may listen).
JOB_SUBMITTED: Final = "job.submitted"
JOB_PENDING: Final = "job.pending"
JOB_RUNNING: Final = "job.running"
JOB_COMPLETED: Final = "job.completed"
JOB_FAILED: Final = "job.failed"
JOB_CANCELLED: Final = "job.cancelled"
JOB_TIMEOUT: Final = "job.timeout"
SERVICE_READY: Final = "service.ready"
SERVICE_UNHEALTHY: Final = "service.unhealthy"
BENCH_STARTED: Final = "bench.started"
BENCH_METRICS: Final = "bench.metrics"
BENCH_COMPLETED: Final = "bench.completed"
BENCH_FAILED: Final = "bench.failed"
MONITOR_SAMPLES_PREFIX: Final = "monitor.samples"
LOGS_PREFIX: Final = "logs"
DEADLETTER_PREFIX: Final = "deadletter"

# Streams and KV buckets.
COMMANDS_STREAM: Final = "AIF_COMMANDS"
EVENTS_STREAM: Final = "AIF_EVENTS"
DEADLETTER_STREAM: Final = "AIF_DEADLETTER"
SERVICES_BUCKET: Final = "aif_services"
BENCHMARKS_BUCKET: Final = "aif_benchmarks"

COMMAND_SUBJECTS: Final = (DEPLOY_REQUESTED, DEPLOY_CANCEL, BENCH_REQUESTED, BENCH_CANCEL)
EVENT_SUBJECTS: Final = (
    "job.*",
    "service.*",
    BENCH_STARTED,
    BENCH_METRICS,
    BENCH_COMPLETED,
    BENCH_FAILED,
    f"{MONITOR_SAMPLES_PREFIX}.*",
    f"{LOGS_PREFIX}.>",
)
DEADLETTER_SUBJECTS: Final = (f"{DEADLETTER_PREFIX}.>",)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

#: The catalogue has one subject per user-visible end of a job; scheduler-specific ends
#: (node failure, OOM, pre-emption…) travel on ``job.failed`` with the precise state inside.
_JOB_SUBJECT_BY_STATE: Final = {
    JobState.PENDING: JOB_PENDING,
    JobState.REQUEUED: JOB_PENDING,
    JobState.SUSPENDED: JOB_PENDING,
    JobState.RUNNING: JOB_RUNNING,
    JobState.COMPLETING: JOB_RUNNING,
    JobState.COMPLETED: JOB_COMPLETED,
    JobState.CANCELLED: JOB_CANCELLED,
    JobState.TIMEOUT: JOB_TIMEOUT,
    JobState.DEADLINE: JOB_TIMEOUT,
}


def job_subject(state: JobState) -> str:
    return _JOB_SUBJECT_BY_STATE.get(state, JOB_FAILED)


def subject_token(value: str) -> str:
    """Check that ``value`` can be one token of a subject (no dots, wildcards or spaces)."""
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError(f"{value!r} cannot be a subject token: use letters, digits, '_' or '-'")
    return value


def monitor_samples(service_id: str) -> str:
    return f"{MONITOR_SAMPLES_PREFIX}.{subject_token(service_id)}"


def logs(service_id: str, stream: str) -> str:
    return f"{LOGS_PREFIX}.{subject_token(service_id)}.{subject_token(stream)}"


def deadletter(subject: str) -> str:
    return f"{DEADLETTER_PREFIX}.{subject}"


# Remote load-generator workers (aifactory/loadgen/remote): one batch job of workers per
# benchmark, reporting to the client service. Records and lifecycle messages are kept in
# their own stream (a big run's records must not evict other events), heartbeats are core
# NATS only (liveness, not data), and work orders live in a KV bucket, read by the workers.
BENCH_RECORDS_PREFIX: Final = "bench.records"
BENCH_WORKER_PREFIX: Final = "bench.worker"
BENCH_HEARTBEAT_PREFIX: Final = "bench.heartbeat"
BENCH_WORK_STREAM: Final = "AIF_BENCH_WORK"
BENCH_WORK_BUCKET: Final = "aif_bench_work"
BENCH_WORK_SUBJECTS: Final = (f"{BENCH_RECORDS_PREFIX}.*", f"{BENCH_WORKER_PREFIX}.*")


def bench_records(benchmark_id: str) -> str:
    """Batches of per-request records from the workers of ``benchmark_id``."""
    return f"{BENCH_RECORDS_PREFIX}.{subject_token(benchmark_id)}"


def bench_worker(benchmark_id: str) -> str:
    """Worker lifecycle (hello, stage done, failed) for ``benchmark_id``."""
    return f"{BENCH_WORKER_PREFIX}.{subject_token(benchmark_id)}"


def bench_heartbeat(benchmark_id: str) -> str:
    return f"{BENCH_HEARTBEAT_PREFIX}.{subject_token(benchmark_id)}"


def bench_work_filter(benchmark_id: str) -> str:
    """Both stream subjects of one benchmark, for one consumer that keeps their order."""
    return f"bench.*.{subject_token(benchmark_id)}"
