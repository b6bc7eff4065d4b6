"""The client service's command consumers: start and cancel benchmarks."""

from __future__ import annotations

from faststream.nats import NatsRouter

from aifactory.services.client.runs import BenchmarkRuns
from aifactory.shared import subjects
from aifactory.shared.bus.commands import command_consumer
from aifactory.shared.channel import Component
from aifactory.shared.settings import Settings


def build_router(settings: Settings, runs: BenchmarkRuns) -> NatsRouter:
    router = NatsRouter()

    def count_deadletter(subject: str) -> None:
        runs.metrics.deadletters.labels(subject).inc()

    command_consumer(
        router,
        runs.broker,
        settings,
        subjects.BENCH_REQUESTED,
        runs.request,
        service=Component.CLIENT,
        on_deadletter=count_deadletter,
    )
    command_consumer(
        router,
        runs.broker,
        settings,
        subjects.BENCH_CANCEL,
        runs.cancel,
        service=Component.CLIENT,
        on_deadletter=count_deadletter,
    )
    return router
