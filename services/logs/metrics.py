"""The logs service's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aifactory.shared.messages import LogStream


@dataclass
class LogsMetrics:
    """Also the followers' :class:`~aifactory.logs.follow.Observer`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records = Counter(
            "aifactory_logs_records", "Records (lines or pieces) published.", ["stream"], registry=r
        )
        self.bytes = Counter(
            "aifactory_logs_bytes", "Bytes of job files published.", ["stream"], registry=r
        )
        self.batches = Counter(
            "aifactory_logs_batches", "Batches acknowledged by the stream.", ["stream"], registry=r
        )
        self.lag = Histogram(
            "aifactory_logs_publish_lag_seconds",
            "From reading bytes of a file to the stream's ack of the batch holding them.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.alerts = Counter(
            "aifactory_logs_alerts", "Alerts published, by pattern.", ["pattern"], registry=r
        )
        self.errors = Counter(
            "aifactory_logs_errors", "Registry updates that could not be applied.", registry=r
        )
        self.files = Gauge("aifactory_logs_followed_files", "Job files followed.", registry=r)
        self.jobs = Gauge("aifactory_logs_followed_jobs", "Jobs followed.", registry=r)

    def follow(self, jobs: Callable[[], int], files: Callable[[], int]) -> None:
        self.jobs.set_function(lambda: float(jobs()))
        self.files.set_function(lambda: float(files()))

    def batch(self, stream: LogStream, records: int, size: int, lag: float) -> None:
        self.records.labels(stream.value).inc(records)
        self.bytes.labels(stream.value).inc(size)
        self.batches.labels(stream.value).inc()
        self.lag.observe(lag)

    def alert(self, pattern: str) -> None:
        self.alerts.labels(pattern).inc()
