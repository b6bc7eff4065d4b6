"""The bus catalogue (design.md §3): every channel declared once, with its contract.

Each :class:`~aifactory.shared.channel.Channel` names its subject (or subject family), its
message model, who produces and who consumes it, and the stream that stores it. Subjects,
stream subjects, ``publish`` checks and the AsyncAPI document all derive from these
declarations; ``tests/unit/test_bus_contract.py`` holds the code to them both ways.
"""

from __future__ import annotations

from typing import Final

from aifactory.shared.channel import Channel, Component, Kind, channel, subject_token
from aifactory.shared.messages import (
    BenchCancel,
    BenchCompleted,
    BenchFailed,
    BenchMetrics,
    BenchRequested,
    BenchStarted,
    DeadLetter,
    DeployCancel,
    DeployRequested,
    JobEvent,
    LogAlert,
    LogEof,
    LogLines,
    LogStream,
    MonitorSamples,
    ServiceReady,
    ServiceUnhealthy,
)
from aifactory.shared.states import JobState

__all__ = ["Channel", "subject_token"]

# Streams and KV buckets.
COMMANDS_STREAM: Final = "AIF_COMMANDS"
EVENTS_STREAM: Final = "AIF_EVENTS"
DEADLETTER_STREAM: Final = "AIF_DEADLETTER"
LOGS_STREAM: Final = "AIF_LOGS"
SERVICES_BUCKET: Final = "aif_services"
BENCHMARKS_BUCKET: Final = "aif_benchmarks"
#: The logs service's read positions, one key per followed file (``<service_id>.<stream>``).
LOGS_BUCKET: Final = "aif_logs"
#: Scrapes kept for reading windows back (benchmarks, late viewers); limited in age and size.
MONITOR_STREAM: Final = "AIF_MONITOR"
#: The monitor's targets per service: what the ingress serves as Prometheus HTTP SD.
TARGETS_BUCKET: Final = "aif_targets"

C = Component
REQUESTERS = {C.INGRESS, C.CLI}

# -- commands: one consumer acts on each, durably, exactly once -------------------------------

DEPLOY_REQUESTED = channel(
    "deploy.requested",
    DeployRequested,
    Kind.COMMAND,
    by=REQUESTERS,
    to={C.SERVER},
    stream=COMMANDS_STREAM,
    about="Deploy a recipe; idempotent by service_id.",
)
DEPLOY_CANCEL = channel(
    "deploy.cancel",
    DeployCancel,
    Kind.COMMAND,
    by=REQUESTERS,
    to={C.SERVER},
    stream=COMMANDS_STREAM,
    about="Cancel a service's job.",
)
BENCH_REQUESTED = channel(
    "bench.requested",
    BenchRequested,
    Kind.COMMAND,
    by=REQUESTERS,
    to={C.CLIENT},
    stream=COMMANDS_STREAM,
    about="Run a benchmark against a service id or a URL; idempotent by benchmark_id.",
)
BENCH_CANCEL = channel(
    "bench.cancel",
    BenchCancel,
    Kind.COMMAND,
    by=REQUESTERS,
    to={C.CLIENT},
    stream=COMMANDS_STREAM,
    about="Stop a benchmark; the records so far are kept and reported.",
)

# -- events: fan-out -----------------------------------------------------------------------

#: The catalogue has one subject per user-visible end of a job; scheduler-specific ends
#: (node failure, OOM, pre-emption…) travel on ``job.failed`` with the precise state inside.
JOB_EVENT_BY_STATE: Final = {
    JobState.PENDING: "pending",
    JobState.REQUEUED: "pending",
    JobState.SUSPENDED: "pending",
    JobState.RUNNING: "running",
    JobState.COMPLETING: "running",
    JobState.COMPLETED: "completed",
    JobState.CANCELLED: "cancelled",
    JobState.TIMEOUT: "timeout",
    JobState.DEADLINE: "timeout",
}
JOB_EVENTS = ("submitted", "pending", "running", "completed", "failed", "cancelled", "timeout")
JOB = channel(
    "job.{event}",
    JobEvent,
    Kind.EVENT,
    by={C.SERVER},
    to=set(),
    stream=EVENTS_STREAM,
    enums={"event": JOB_EVENTS},
    about="A job transition: submitted (by us), then the scheduler's pending, running and "
    "its end; failed covers node_fail, out_of_memory, preempted, boot_fail and vanished "
    "(the precise state is in job_state).",
)
SERVICE_READY = channel(
    "service.ready",
    ServiceReady,
    Kind.EVENT,
    by={C.SERVER},
    to=set(),
    stream=EVENTS_STREAM,
    about="Every replica answers its health path; endpoints inside.",
)
SERVICE_UNHEALTHY = channel(
    "service.unhealthy",
    ServiceUnhealthy,
    Kind.EVENT,
    by={C.SERVER},
    to=set(),
    stream=EVENTS_STREAM,
    about="Not healthy within the recipe's timeout; the job is cancelled.",
)
BENCH_STARTED = channel(
    "bench.started",
    BenchStarted,
    Kind.EVENT,
    by={C.CLIENT},
    to=set(),
    stream=EVENTS_STREAM,
    about="The target is resolved and answers; load begins.",
)
BENCH_METRICS = channel(
    "bench.metrics",
    BenchMetrics,
    Kind.EVENT,
    by={C.CLIENT},
    to={C.CLI},
    stream=EVENTS_STREAM,
    about="A window of live figures, every window_s.",
)
BENCH_COMPLETED = channel(
    "bench.completed",
    BenchCompleted,
    Kind.EVENT,
    by={C.CLIENT},
    to=set(),
    stream=EVENTS_STREAM,
    about="Summary and results folder (also for a cancelled run).",
)
BENCH_FAILED = channel(
    "bench.failed",
    BenchFailed,
    Kind.EVENT,
    by={C.CLIENT},
    to=set(),
    stream=EVENTS_STREAM,
    about="The benchmark could not run; reason inside.",
)
MONITOR_SAMPLES = channel(
    "monitor.samples.{service_id}",
    MonitorSamples,
    Kind.EVENT,
    by={C.MONITOR},
    to={C.CLIENT, C.CLI},
    stream=MONITOR_STREAM,
    about="One scrape of one of the service's targets (its server, a node exporter, a DCGM "
    "exporter): the kept samples, or up=false and the reason.",
)
DEADLETTER = channel(
    "deadletter.{subject}",
    DeadLetter,
    Kind.EVENT,
    by={C.SERVER, C.CLIENT},
    to={C.OPERATOR},
    stream=DEADLETTER_STREAM,
    tail="subject",
    about="A message a consumer could not accept, with the reason and the body.",
)

# -- job output (the logs service): lines, the end of a job's output, alerts ---------------
# All three share the ``logs.<service_id>.*`` space, so one ordered consumer on it reads a
# job's lines, alerts and end in the order they were published. (The alert subject is
# ``logs.<id>.alert`` rather than ``logs.alert.<id>``: JetStream refuses overlapping
# subjects, and ``logs.alert.out`` would be both service "alert"'s stdout and an alert.)

LOGS = channel(
    "logs.{service_id}.{stream}",
    LogLines,
    Kind.EVENT,
    by={C.LOGS},
    to={C.INGRESS, C.CLI},
    stream=LOGS_STREAM,
    enums={"stream": tuple(s.value for s in LogStream)},
    about="A batch of lines of a job's stdout (out) or stderr (err), with its file "
    "identity, byte offset and first line number; kept with age and size limits.",
)
LOGS_EOF = channel(
    "logs.{service_id}.eof",
    LogEof,
    Kind.EVENT,
    by={C.LOGS},
    to={C.INGRESS, C.CLI},
    stream=LOGS_STREAM,
    about="The job ended and every line of its output is published.",
)
LOG_ALERT = channel(
    "logs.{service_id}.alert",
    LogAlert,
    Kind.EVENT,
    by={C.LOGS},
    to={C.SERVER, C.INGRESS, C.CLI},
    stream=LOGS_STREAM,
    about="A failure pattern (traceback, CUDA OOM, NCCL error, slurmstepd error, OOM kill, "
    "Apptainer pull failure) at a line of a job's output; the server shows it as the "
    "service's reason.",
)

#: Every channel of the services' bus, in catalogue order.
CHANNELS: Final[tuple[Channel, ...]] = (
    DEPLOY_REQUESTED,
    DEPLOY_CANCEL,
    BENCH_REQUESTED,
    BENCH_CANCEL,
    JOB,
    SERVICE_READY,
    SERVICE_UNHEALTHY,
    BENCH_STARTED,
    BENCH_METRICS,
    BENCH_COMPLETED,
    BENCH_FAILED,
    MONITOR_SAMPLES,
    DEADLETTER,
    LOGS,
    LOGS_EOF,
    LOG_ALERT,
)


def job_event(state: JobState) -> str:
    """The ``event`` of ``job.{event}`` for an observed scheduler state."""
    return JOB_EVENT_BY_STATE.get(state, "failed")


def stream_subjects(stream: str, channels: tuple[Channel, ...] = CHANNELS) -> list[str]:
    """The subjects a stream stores: the filters of the channels declared on it, less those
    another one already covers (JetStream refuses overlapping subjects in a stream)."""
    filters = list(dict.fromkeys(c.filter for c in channels if c.stream == stream))
    return [f for f in filters if not any(o != f and subject_covers(o, f) for o in filters)]


def subject_covers(wide: str, narrow: str) -> bool:
    """Does the NATS filter ``wide`` match every subject ``narrow`` matches?"""
    w, n = wide.split("."), narrow.split(".")
    for i, part in enumerate(w):
        if part == ">":
            return len(n) > i
        if i >= len(n) or n[i] == ">" or (part != "*" and (part != n[i] or n[i] == "*")):
            return False
    return len(w) == len(n)
