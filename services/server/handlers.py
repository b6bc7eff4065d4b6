"""FastStream subscribers of the server service: one handler per command subject.

Handlers read the raw body and validate it themselves so that a malformed command is
dead-lettered with its reason instead of being redelivered forever.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, NatsRouter, PullSub

from services.server.lifecycle import Lifecycle
from services.server.tracker import Tracker
from shared import subjects
from shared.bus import decode_or_deadletter
from shared.messages import DeployCancel, DeployRequested
from shared.settings import Settings

CONSUMER = "server"


def build_router(settings: Settings, lifecycle: Lifecycle, tracker: Tracker) -> NatsRouter:
    router = NatsRouter()
    commands = JStream(subjects.COMMANDS_STREAM, declare=False)

    def consumer_config(durable: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable,
            ack_wait=settings.command_ack_wait,
            max_deliver=settings.command_max_deliver,
        )

    @router.subscriber(
        subjects.DEPLOY_REQUESTED,
        stream=commands,
        durable="server-deploy-requested",
        config=consumer_config("server-deploy-requested"),
        pull_sub=PullSub(batch_size=8, timeout=1.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="server/deploy.requested",
        description="Render the recipe and submit its job; idempotent by service id.",
    )
    async def on_deploy_requested(msg: NatsMessage) -> None:
        cmd = await decode_or_deadletter(
            lifecycle.broker,
            msg.body,
            DeployRequested,
            subject=subjects.DEPLOY_REQUESTED,
            consumer=CONSUMER,
        )
        if cmd is None:
            lifecycle.metrics.deadletters.labels(subjects.DEPLOY_REQUESTED).inc()
            return
        await lifecycle.deploy(cmd)
        tracker.wake()

    @router.subscriber(
        subjects.DEPLOY_CANCEL,
        stream=commands,
        durable="server-deploy-cancel",
        config=consumer_config("server-deploy-cancel"),
        pull_sub=PullSub(batch_size=8, timeout=1.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="server/deploy.cancel",
        description="Cancel a service's job; cancelling an ended service is a no-op.",
    )
    async def on_deploy_cancel(msg: NatsMessage) -> None:
        cmd = await decode_or_deadletter(
            lifecycle.broker,
            msg.body,
            DeployCancel,
            subject=subjects.DEPLOY_CANCEL,
            consumer=CONSUMER,
        )
        if cmd is None:
            lifecycle.metrics.deadletters.labels(subjects.DEPLOY_CANCEL).inc()
            return
        await lifecycle.cancel(cmd)
        tracker.wake()

    return router
