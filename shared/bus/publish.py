"""Publishing to JetStream with the message id as ``Nats-Msg-Id``.

Always publish through here: the header is what makes a re-sent command a no-op inside the
stream's duplicate window, and the PubAck is what tells the caller it was persisted.
"""

from __future__ import annotations

from faststream.nats import NatsBroker

from aifactory.shared.messages.base import Message

CONTENT_TYPE = "application/json"


async def publish(
    broker: NatsBroker,
    message: Message,
    *,
    subject: str | None = None,
    stream: str | None = None,
    timeout: float = 5.0,
) -> None:
    target = subject or message.subject
    if not target:
        raise ValueError(f"{type(message).__name__} has no fixed subject: pass subject=")
    await broker.publish(
        message.model_dump_json().encode(),
        target,
        headers={"Nats-Msg-Id": message.id, "content-type": CONTENT_TYPE},
        correlation_id=message.correlation_id or message.id,
        stream=stream,
        timeout=timeout,
    )
