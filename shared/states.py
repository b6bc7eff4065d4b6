"""State vocabularies shared by every service.

States are enums, never bare strings, so that a typo is a type error and a new state is
one place to change. ``JobState`` is the scheduler's view (one value per SLURM state);
``ServiceState`` is the user's view of a deployed service (design.md §5).
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A batch job's state as the scheduler reports it (SLURM's long names, lower-cased)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NODE_FAIL = "node_fail"
    OUT_OF_MEMORY = "out_of_memory"
    PREEMPTED = "preempted"
    BOOT_FAIL = "boot_fail"
    DEADLINE = "deadline"
    REQUEUED = "requeued"
    SUSPENDED = "suspended"
    #: The scheduler no longer knows the job and no accounting record says how it ended.
    VANISHED = "vanished"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_JOB_STATES

    @property
    def is_active(self) -> bool:
        """The job holds (or is about to hold) resources: its service may be reachable."""
        return self in (JobState.RUNNING, JobState.COMPLETING)


_TERMINAL_JOB_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY,
        JobState.PREEMPTED,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.VANISHED,
    }
)


class ServiceState(StrEnum):
    """Lifecycle of a deployed service: pending → starting → running → an end state."""

    PENDING = "pending"  # accepted; job queued or being submitted
    STARTING = "starting"  # job running, health check not passed yet
    RUNNING = "running"  # healthy, endpoints known
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in (
            ServiceState.COMPLETED,
            ServiceState.FAILED,
            ServiceState.CANCELLED,
            ServiceState.TIMEOUT,
        )


class BenchState(StrEnum):
    """Lifecycle of a benchmark run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Its process died mid-run (``kill -9``, node loss): the records received so far are
    #: kept and summarised; it is not re-run (that would load the target twice).
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        return self is not BenchState.PENDING and self is not BenchState.RUNNING


def service_state_for(job: JobState, *, healthy: bool) -> ServiceState:
    """Map a scheduler state onto the user's service state.

    A job that ends by itself (COMPLETED) is a service that stopped; the scheduler-side
    reasons for ending badly (node failure, OOM, pre-emption, boot failure, vanished) are all
    ``failed`` to the user, with the precise job state kept beside it in the registry.
    """
    if job in (JobState.PENDING, JobState.REQUEUED, JobState.SUSPENDED):
        return ServiceState.PENDING
    if job.is_active:
        return ServiceState.RUNNING if healthy else ServiceState.STARTING
    if job is JobState.COMPLETED:
        return ServiceState.COMPLETED
    if job is JobState.CANCELLED:
        return ServiceState.CANCELLED
    if job in (JobState.TIMEOUT, JobState.DEADLINE):
        return ServiceState.TIMEOUT
    return ServiceState.FAILED
