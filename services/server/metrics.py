"""The server service's own Prometheus metrics (own registry: tests run several at once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.deploys = Counter(
            "aifactory_server_deploys",
            "Deploy commands handled, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.submit_seconds = Histogram(
            "aifactory_server_submit_seconds",
            "Time from deploy.requested received to the job accepted by the scheduler.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.command_wait_seconds = Histogram(
            "aifactory_server_command_wait_seconds",
            "Time a command waited in the stream before its handler started.",
            ["subject"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.polls = Counter(
            "aifactory_server_polls", "Batched scheduler state queries.", registry=r
        )
        self.poll_errors = Counter(
            "aifactory_server_poll_errors", "Scheduler queries that failed.", registry=r
        )
        self.poll_seconds = Histogram(
            "aifactory_server_poll_seconds", "Duration of one batched state query.", registry=r
        )
        self.tracked = Gauge(
            "aifactory_server_tracked_jobs", "Jobs whose state is being followed.", registry=r
        )
        self.transitions = Counter(
            "aifactory_server_job_transitions",
            "Observed job state changes.",
            ["state"],
            registry=r,
        )
        self.deadletters = Counter(
            "aifactory_server_deadletters",
            "Malformed commands parked.",
            ["subject"],
            registry=r,
        )
        self.http_requests = Counter(
            "aifactory_ingress_requests",
            "Ingress HTTP requests.",
            ["method", "route", "status"],
            registry=r,
        )
        self.gc_removed = Counter(
            "aifactory_server_gc_removed_folders",
            "Folders the retention policy removed, by kind (jobs, benchmarks).",
            ["kind"],
            registry=r,
        )
        self.gc_freed = Counter(
            "aifactory_server_gc_freed_bytes",
            "Disk space the retention policy freed, by kind.",
            ["kind"],
            registry=r,
        )
