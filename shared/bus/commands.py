"""Command consumers: a durable JetStream (push) consumer per command subject.

Every command handler in every service needs the same things — the durable consumer on the
commands stream, redelivery on a crash, and dead-lettering of malformed messages — so they
are declared once here and a service only supplies what to do with a valid command.

Push rather than pull: measured on SLURM deploys, a pull consumer's fetch cycle left about
one command in thirty waiting ~0.7 s before a handler took it; a push consumer delivers at
once and keeps the same durability (the consumer state lives in JetStream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from faststream import AckPolicy
from faststream.nats import (
    ConsumerConfig,
    JStream,
    NatsBroker,
    NatsMessage,
    NatsRouter,
)

from aifactory.shared.bus.deadletter import decode_or_deadletter
from aifactory.shared.channel import Channel, Component, Kind
from aifactory.shared.messages.base import Message
from aifactory.shared.settings import Settings

M = TypeVar("M", bound=Message)


def command_consumer(
    router: NatsRouter,
    broker: NatsBroker,
    settings: Settings,
    channel: Channel[M],
    handle: Callable[[M], Awaitable[None]],
    *,
    service: Component,
    on_deadletter: Callable[[str], None] | None = None,
    observe_wait: Callable[[str, float], None] | None = None,
    max_workers: int = 8,
) -> None:
    """Subscribe ``handle`` to ``channel`` with durable name ``<service>-<subject>``.

    The handler returning acknowledges the command; raising makes JetStream redeliver it
    (up to ``command_max_deliver`` times, after ``command_ack_wait``). Up to ``max_workers``
    commands run at once, so one slow submission does not hold back a burst behind it.
    ``observe_wait`` gets the seconds each command waited in the stream before its handler.
    """
    if channel.kind is not Kind.COMMAND or service not in channel.consumers:
        raise ValueError(f"{service} is not the declared consumer of command {channel.address}")
    subject, model = channel.subject(), channel.model
    assert channel.stream is not None, "commands are stored"
    durable = f"{service}-{subject.replace('.', '-')}"

    @router.subscriber(
        subject,
        stream=JStream(channel.stream, declare=False),
        durable=durable,
        config=ConsumerConfig(
            durable_name=durable,
            ack_wait=settings.command_ack_wait,
            max_deliver=settings.command_max_deliver,
        ),
        max_workers=max_workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{service}/{subject}",
        description=channel.description,
    )
    async def consume(msg: NatsMessage) -> None:
        if observe_wait is not None:
            stored = msg.raw_message.metadata.timestamp
            observe_wait(subject, max(0.0, (datetime.now(UTC) - stored).total_seconds()))
        command = await decode_or_deadletter(
            broker, msg.body, model, subject=subject, consumer=service
        )
        if command is None:
            if on_deadletter is not None:
                on_deadletter(subject)
            return
        await handle(command)
