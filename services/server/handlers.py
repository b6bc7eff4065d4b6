"""The server service's consumers: deploy and cancel commands, log alerts."""

from __future__ import annotations

from faststream.nats import NatsRouter

from aifactory.services.server.alerts import consume_alerts
from aifactory.services.server.lifecycle import Lifecycle
from aifactory.services.server.tracker import Tracker
from aifactory.shared import subjects
from aifactory.shared.bus.commands import command_consumer
from aifactory.shared.channel import Component
from aifactory.shared.messages import DeployCancel, DeployRequested
from aifactory.shared.settings import Settings


def build_router(settings: Settings, lifecycle: Lifecycle, tracker: Tracker) -> NatsRouter:
    router = NatsRouter()

    def count_deadletter(subject: str) -> None:
        lifecycle.metrics.deadletters.labels(subject).inc()

    def observe_wait(subject: str, seconds: float) -> None:
        lifecycle.metrics.command_wait_seconds.labels(subject).observe(seconds)

    async def deploy(cmd: DeployRequested) -> None:
        await lifecycle.deploy(cmd)
        tracker.wake()

    async def cancel(cmd: DeployCancel) -> None:
        await lifecycle.cancel(cmd)
        tracker.wake()

    command_consumer(
        router,
        lifecycle.broker,
        settings,
        subjects.DEPLOY_REQUESTED,
        deploy,
        service=Component.SERVER,
        on_deadletter=count_deadletter,
        observe_wait=observe_wait,
    )
    command_consumer(
        router,
        lifecycle.broker,
        settings,
        subjects.DEPLOY_CANCEL,
        cancel,
        service=Component.SERVER,
        on_deadletter=count_deadletter,
        observe_wait=observe_wait,
    )
    consume_alerts(router, settings, lifecycle)
    return router
