"""The client service's command consumers: start and cancel benchmarks."""

from __future__ import annotations

from faststream.nats import NatsRouter

from aifactory.services.client.runs import BenchmarkRuns
from aifactory.shared.bus.commands import command_consumer
from aifactory.shared.messages import BenchCancel, BenchRequested
from aifactory.shared.settings import Settings


def build_router(settings: Settings, runs: BenchmarkRuns) -> NatsRouter:
    router = NatsRouter()

    def count_deadletter(subject: str) -> None:
        runs.metrics.deadletters.labels(subject).inc()

    command_consumer(
        router,
        runs.broker,
        settings,
        BenchRequested,
        runs.request,
        service="client",
        description="Start a benchmark run; idempotent by benchmark id.",
        on_deadletter=count_deadletter,
    )
    command_consumer(
        router,
        runs.broker,
        settings,
        BenchCancel,
        runs.cancel,
        service="client",
        description="Stop a running benchmark; partial results are kept, marked cancelled.",
        on_deadletter=count_deadletter,
    )
    return router
