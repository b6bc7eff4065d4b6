"""Watching event channels live (the CLI, the experiment runner, the web page).

A watcher is not a consumer of record: a message it cannot decode is logged and skipped
(the consumers that act on events dead-letter them), and it sees only what is published
while it listens (read the stream for history).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

from aifactory.shared.bus.deadletter import describe_validation_error
from aifactory.shared.channel import Channel

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


async def watch(
    nc: NatsClient,
    channel: Channel[M],
    on_message: Callable[[M], Awaitable[None]],
    **params: str,
) -> Subscription:
    """Call ``on_message`` with each decoded message of ``channel`` (all of a family when
    ``params`` are left out). Unsubscribe the returned subscription to stop."""
    subject = channel.subject(**params) if params else channel.filter

    async def deliver(msg: Msg) -> None:
        try:
            message = channel.model.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("skipped a malformed %s: %s", msg.subject, describe_validation_error(exc))
            return
        await on_message(message)

    return await nc.subscribe(subject, cb=deliver)
