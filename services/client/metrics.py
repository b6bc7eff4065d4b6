"""The client service's own Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ClientMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.benchmarks = Counter(
            "aifactory_client_benchmarks",
            "Benchmarks finished, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.running = Gauge(
            "aifactory_client_benchmarks_running", "Benchmarks in progress.", registry=r
        )
        self.requests = Counter(
            "aifactory_client_requests",
            "Benchmark requests finished, by result (ok or the error type).",
            ["result"],
            registry=r,
        )
        self.deadletters = Counter(
            "aifactory_client_deadletters", "Malformed commands parked.", ["subject"], registry=r
        )
