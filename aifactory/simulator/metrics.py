"""vLLM-named Prometheus metrics, kept cheap on the request path.

The hot path only bumps plain Python numbers (one ``bisect`` per histogram observation, no
locks, no label lookups); a custom collector turns them into metric families when ``/metrics``
is scraped. Gauges (running, waiting, KV usage) are read live from the scheduler at scrape
time, so they cost nothing per request. Names, types and buckets follow vLLM so dashboards and
the monitor service cannot tell the simulator from the real engine.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: vLLM v1 labels every engine metric with the served model and the engine index.
VLLM_LABELS = ("model_name", "engine")
ENGINE = "0"

# Bucket bounds copied from vLLM's v1 metrics so histogram_quantile() results are comparable.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
# Not a vLLM metric: how late the simulator wrote tokens versus its own schedule. If this grows,
# the simulator (not the system under test) is the bottleneck and results are suspect.
LATENESS_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


class FastHistogram:
    """Lock-free histogram for a single-threaded event loop."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last slot is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def observe_many(self, value: float, times: int) -> None:
        """Record the same value ``times`` times (tokens coalesced into one write)."""
        if times > 0:
            self.counts[bisect_left(self.bounds, value)] += times
            self.total += value * times
            self.count += times

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((_fmt(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


def _fmt(bound: float) -> str:
    return repr(float(bound))


class SimulatorMetrics:
    """All counters and histograms of one simulator; render with :meth:`render`."""

    def __init__(
        self,
        model: str,
        running: Callable[[], int],
        waiting: Callable[[], int],
        capacity: int,
    ) -> None:
        self.model = model
        self._running = running
        self._waiting = waiting
        self._capacity = capacity
        self.ttft = FastHistogram(TTFT_BUCKETS)
        self.itl = FastHistogram(ITL_BUCKETS)
        self.e2e = FastHistogram(E2E_BUCKETS)
        self.queue = FastHistogram(E2E_BUCKETS)
        self.lateness = FastHistogram(LATENESS_BUCKETS)
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.faults: dict[str, int] = {"http_500": 0, "cut": 0}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        labels = list(VLLM_LABELS)
        value = [self.model, ENGINE]
        running = self._running()
        yield _gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            labels,
            value,
            running,
        )
        yield _gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            labels,
            value,
            self._waiting(),
        )
        yield _gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage (simulated: running / max_running).",
            labels,
            value,
            running / self._capacity,
        )
        yield _histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            value,
            self.ttft,
        )
        yield _histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            value,
            self.itl,
        )
        yield _histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            value,
            self.e2e,
        )
        yield _histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            value,
            self.queue,
        )
        yield _counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            labels,
            value,
            self.prompt_tokens,
        )
        yield _counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            labels,
            value,
            self.generation_tokens,
        )
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*VLLM_LABELS, "finished_reason"],
        )
        for reason, n in self.success.items():
            success.add_metric([self.model, ENGINE, reason], float(n))
        yield success
        yield _histogram(
            "simulator_emission_lateness_seconds",
            "How late token writes were versus the simulator's schedule (self-check: the "
            "simulator must not be the bottleneck).",
            value,
            self.lateness,
        )
        faults = CounterMetricFamily(
            "simulator_injected_faults",
            "Requests the simulator failed on purpose (--error-rate, --cut-rate).",
            labels=[*VLLM_LABELS, "kind"],
        )
        for kind, n in self.faults.items():
            faults.add_metric([self.model, ENGINE, kind], float(n))
        yield faults


class _Collector(Collector):
    def __init__(self, metrics: SimulatorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


def _gauge(name: str, doc: str, labels: list[str], values: list[str], v: float) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    family.add_metric(values, float(v))
    return family


def _counter(name: str, doc: str, labels: list[str], values: list[str], v: float) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    family.add_metric(values, float(v))
    return family


def _histogram(name: str, doc: str, values: list[str], hist: FastHistogram) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=list(VLLM_LABELS))
    family.add_metric(values, hist.cumulative(), sum_value=hist.total)
    return family
