"""Durable event consumers: a service that must act on every event of a family, also
those published while it was down (the server applying log alerts to its records).

The same machinery as command consumers (a durable push consumer, redelivery when the
handler raises, dead-lettering of malformed messages), for a declared *event* channel and
all its subjects: a restart resumes where the consumer's acknowledged position is, so no
event is missed and none is applied twice by a handler that is idempotent per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, NatsRouter
from nats.js.api import DeliverPolicy

from aifactory.shared.bus.deadletter import decode_or_deadletter
from aifactory.shared.channel import Channel, Component, Kind
from aifactory.shared.messages.base import Message
from aifactory.shared.settings import Settings

M = TypeVar("M", bound=Message)


def durable_consumer(
    router: NatsRouter,
    broker: NatsBroker,
    settings: Settings,
    channel: Channel[M],
    handle: Callable[[M, str], Awaitable[None]],
    *,
    service: Component,
    name: str,
    max_workers: int = 1,
) -> None:
    """Subscribe ``handle(message, subject)`` to every subject of event ``channel``, with
    durable name ``<service>-<name>``; returning acknowledges, raising redelivers."""
    if channel.kind is not Kind.EVENT or service not in channel.consumers:
        raise ValueError(f"{service} is not a declared consumer of event {channel.address}")
    assert channel.stream is not None, "a durable consumer reads a stream"
    durable = f"{service}-{name}"
    model = channel.model

    @router.subscriber(
        channel.filter,
        stream=JStream(channel.stream, declare=False),
        durable=durable,
        config=ConsumerConfig(
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.command_ack_wait,
            max_deliver=settings.command_max_deliver,
        ),
        max_workers=max_workers,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{service}/{channel.filter}",
        description=channel.description,
    )
    async def consume(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        event = await decode_or_deadletter(
            broker, msg.body, model, subject=subject, consumer=service
        )
        if event is not None:
            await handle(event, subject)
