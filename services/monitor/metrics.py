"""The monitor service's own Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class MonitorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _labelled: dict[tuple[str, bool], tuple[Counter, Histogram]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.registry
        self.scrapes = Counter(
            "aifactory_monitor_scrapes",
            "Scrapes done, by target role and result (ok or failed).",
            ["role", "result"],
            registry=r,
        )
        self.scrape_seconds = Histogram(
            "aifactory_monitor_scrape_duration_seconds",
            "Time to fetch and parse one target's exposition.",
            ["role"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.samples = Counter(
            "aifactory_monitor_samples_published",
            "Samples published on monitor.samples.*.",
            registry=r,
        )
        self.publish_errors = Counter(
            "aifactory_monitor_publish_errors",
            "Scrapes whose message could not be published.",
            registry=r,
        )
        self.targets = Gauge(
            "aifactory_monitor_targets", "Targets being scraped, by role.", ["role"], registry=r
        )
        #: 1 while a benchmark loads a service: Grafana marks the runs with it.
        self.benchmark_active = Gauge(
            "aifactory_monitor_benchmark_active",
            "1 while the benchmark loads the service (scraped every benchmark_interval).",
            ["service_id", "benchmark_id"],
            registry=r,
        )

    def scraped(self, role: str, up: bool, seconds: float) -> None:
        counter, histogram = self._children(role, up)
        counter.inc()
        histogram.observe(seconds)

    def _children(self, role: str, up: bool) -> tuple[Counter, Histogram]:
        """The labelled children, looked up once (``labels()`` costs a lock and a dict)."""
        found = self._labelled.get((role, up))
        if found is None:
            found = (
                self.scrapes.labels(role, "ok" if up else "failed"),
                self.scrape_seconds.labels(role),
            )
            self._labelled[(role, up)] = found
        return found
